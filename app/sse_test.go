package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"flashsale/config"
	"flashsale/internal/apptest"
	"flashsale/internal/testenv"
	"flashsale/live"
)

// sseEvent is one event read off a stream.
type sseEvent struct {
	ID, Name string
	Data     map[string]any
}

// sseStream is an open event stream, read in the background.
type sseStream struct {
	Status int
	Header http.Header
	events chan sseEvent
}

// stream opens path as an event stream (token, if any, as a header),
// read until the test ends.
func (s *stack) stream(path, token string, hdr map[string]string) *sseStream {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.base+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := &http.Client{Transport: s.http.Transport} // no overall timeout: a stream lasts
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		s.t.Fatalf("GET %s: %v", path, err)
	}
	st := &sseStream{Status: resp.StatusCode, Header: resp.Header, events: make(chan sseEvent, 1024)}
	done := make(chan struct{})
	s.t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		defer resp.Body.Close()
		defer close(st.events)
		readEvents(bufio.NewReaderSize(resp.Body, 1<<20), st.events)
	}()
	return st
}

// readEvents parses SSE frames until the body ends.
func readEvents(r *bufio.Reader, out chan<- sseEvent) {
	var ev sseEvent
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && ev.Name != "":
			out <- ev
			ev = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Name = line[7:]
		case strings.HasPrefix(line, "data: "):
			_ = json.Unmarshal([]byte(line[6:]), &ev.Data)
		}
	}
}

// next is the stream's next event; ok is false when the stream ended.
func (st *sseStream) next(t *testing.T) (sseEvent, bool) {
	t.Helper()
	select {
	case ev, ok := <-st.events:
		return ev, ok
	case <-time.After(15 * time.Second):
		t.Fatal("no event within 15s")
		return sseEvent{}, false
	}
}

// wantStatus reads the stream's next event and checks the order's status.
func (st *sseStream) wantStatus(t *testing.T, status string) {
	t.Helper()
	ev, ok := st.next(t)
	if !ok || ev.Name != "order" || ev.ID != status || ev.Data["status"] != status {
		t.Fatalf("want order %s, got %v %+v", status, ok, ev)
	}
}

// TestOrderEventsOwnerOnly: an order's stream needs its buyer's token,
// as a header or, for EventSource, ?access_token=; another buyer's order
// is 404, as for GET.
func TestOrderEventsOwnerOnly(t *testing.T) {
	s := start(t, func(c *config.Config) { c.UserRate, c.UserBurst = 1000, 1000 })
	sale := s.createSale(10, 5)
	id := s.placed("alice", "k1", sale, 1)
	path := "/v1/orders/" + id + "/events"
	if r := s.do("GET", path, "", nil, nil); r.Status != http.StatusUnauthorized || r.problemType(t) != "unauthorized" {
		t.Fatalf("without token: %d %s", r.Status, r.Body)
	}
	if r := s.do("GET", path, s.token("mallory", false), nil, nil); r.Status != http.StatusNotFound || r.problemType(t) != "not-found" {
		t.Fatalf("another buyer: %d %s", r.Status, r.Body)
	}
	if r := s.do("GET", path+"?access_token="+s.token("mallory", false), "", nil, nil); r.Status != http.StatusNotFound {
		t.Fatalf("another buyer's query token: %d %s", r.Status, r.Body)
	}
	st := s.stream(path, s.token("alice", false), nil)
	if st.Status != http.StatusOK || st.Header.Get("Content-Type") != "text/event-stream" || st.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("owner: %d %v", st.Status, st.Header)
	}
	st.wantStatus(t, "pending_payment")
	q := s.stream(path+"?access_token="+s.token("alice", false), "", nil)
	if q.Status != http.StatusOK {
		t.Fatalf("owner's query token: %d", q.Status)
	}
	q.wantStatus(t, "pending_payment")
}

// TestOrderEventsAcrossInstances: a subscriber on instance B sees the
// transitions made on instance A (paid; cancelled), through Redis; a
// reconnect with Last-Event-ID skips the state it already has.
func TestOrderEventsAcrossInstances(t *testing.T) {
	cfg := testenv.Config(t, 4)
	cfg.IPRate, cfg.IPBurst, cfg.UserRate, cfg.UserBurst = 1_000_000, 1_000_000, 1000, 1000
	a, b := startWith(t, cfg), startWith(t, cfg)
	sale := a.createSale(10, 5)
	alice := a.token("alice", false)
	paid, cancelled := a.placed("alice", "k1", sale, 1), a.placed("alice", "k2", sale, 1)
	onPaid := b.stream("/v1/orders/"+paid+"/events", alice, nil)
	onCancelled := b.stream("/v1/orders/"+cancelled+"/events", alice, nil)
	onPaid.wantStatus(t, "pending_payment")
	onCancelled.wantStatus(t, "pending_payment")
	if r := a.do("POST", "/v1/orders/"+paid+"/pay", alice, nil, nil); r.Status != http.StatusOK {
		t.Fatalf("pay: %d %s", r.Status, r.Body)
	}
	onPaid.wantStatus(t, "paid")
	if r := a.do("POST", "/v1/orders/"+cancelled+"/cancel", alice, nil, nil); r.Status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	onCancelled.wantStatus(t, "cancelled")
	// A reconnect that has the current state gets nothing until a change.
	again := b.stream("/v1/orders/"+paid+"/events", alice, map[string]string{"Last-Event-ID": "paid"})
	select {
	case ev := <-again.events:
		t.Fatalf("reconnect with the current state got %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestOrderEventsExpiry: the sweeper's expiry reaches the order's stream.
func TestOrderEventsExpiry(t *testing.T) {
	s := start(t, func(c *config.Config) { c.PaymentWindow, c.ExpiryInterval = time.Second, 100*time.Millisecond })
	sale := s.createSale(10, 5)
	id := s.placed("alice", "k1", sale, 1)
	st := s.stream("/v1/orders/"+id+"/events", s.token("alice", false), nil)
	st.wantStatus(t, "pending_payment")
	st.wantStatus(t, "expired")
}

// TestSaleEventsStream: a sale's public stream shows its remaining stock
// when orders on another instance take it.
func TestSaleEventsStream(t *testing.T) {
	cfg := testenv.Config(t, 4)
	cfg.IPRate, cfg.IPBurst = 1_000_000, 1_000_000
	a, b := startWith(t, cfg), startWith(t, cfg)
	sale := a.createSale(10, 5)
	if r := b.do("GET", "/v1/sales/999999999/events", "", nil, nil); r.Status != http.StatusNotFound {
		t.Fatalf("unknown sale: %d %s", r.Status, r.Body)
	}
	st := b.stream("/v1/sales/"+sale+"/events", "", nil)
	ev, ok := st.next(t)
	if !ok || ev.Name != "sale" || ev.Data["remaining"] != 10.0 || ev.Data["state"] != "active" {
		t.Fatalf("snapshot: %v %+v", ok, ev)
	}
	a.placed("alice", "k1", sale, 3)
	ev, ok = st.next(t)
	if !ok || ev.Data["remaining"] != 7.0 {
		t.Fatalf("after an order of 3: %v %+v", ok, ev)
	}
}

// TestSaleEventsDropSlowSubscriber: a client that stops reading is
// dropped once the socket and its buffer are full, while another client of
// the same sale keeps receiving every event.
func TestSaleEventsDropSlowSubscriber(t *testing.T) {
	s := start(t, func(c *config.Config) { c.WriteTimeout = 2 * time.Second })
	sale := s.createSale(10, 5)
	fast := s.stream("/v1/sales/"+sale+"/events", "", nil)
	if _, ok := fast.next(t); !ok {
		t.Fatal("no snapshot")
	}
	slow := stuckClient(t, s.base, "/v1/sales/"+sale+"/events")
	defer slow.Close()
	hub := s.app.Hub()
	waitFor(t, "both subscribed", func() bool { return hub.Subscribers() == 2 })
	pub := live.NewPublisher(s.redis(), s.cfg.RedisPrefix+":live", nil)
	pctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pub.Run(pctx) }()
	defer func() { stop(); <-done }()
	// 64 KiB events, until the stuck client's socket is full and then its
	// buffer: a few MB. The fast client takes each before the next goes.
	pad := strings.Repeat("x", 64<<10)
	for i := 0; ; i++ {
		if _, dropped := hub.Stats(); dropped > 0 {
			break
		}
		if i > 2000 {
			t.Fatal("the stuck subscriber was never dropped")
		}
		id := live.ContentID([]byte(pad + string(rune(i))))
		pub.Publish(live.NewEvent(live.SaleTopic(sale), "sale", id, []byte(`{"pad":"`+pad+`","i":`+itoa(i)+`}`)))
		ev, ok := fast.next(t)
		for ok && ev.Data["pad"] == nil { // the poller's view of the sale
			ev, ok = fast.next(t)
		}
		if !ok || ev.Data["i"] != float64(i) {
			t.Fatalf("fast subscriber's event %d: %v %v", i, ok, ev.Data["i"])
		}
	}
	if n := hub.Subscribers(); n != 1 {
		t.Fatalf("%d subscribers after the drop, want the fast one", n)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// stuckClient sends a GET on a socket with a small receive buffer and
// never reads from it.
func stuckClient(t *testing.T, base, path string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: nil}
	c, err := d.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := c.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestShutdownEndsStreams: open streams end when shutdown begins, so
// Serve's ordered shutdown finishes well within its timeout.
func TestShutdownEndsStreams(t *testing.T) {
	cfg := testenv.Config(t, 4)
	cfg.IPRate, cfg.IPBurst, cfg.ShutdownTimeout = 1_000_000, 1_000_000, 20*time.Second
	inst := apptest.Start(t, cfg, apptest.Options{})
	s := &stack{t: t, cfg: cfg, app: inst.App, base: inst.Base, http: &http.Client{Transport: &http.Transport{}}}
	sale := s.createSale(10, 5)
	st := s.stream("/v1/sales/"+sale+"/events", "", nil)
	if _, ok := st.next(t); !ok {
		t.Fatal("no snapshot")
	}
	began := time.Now()
	if err := inst.Stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if took := time.Since(began); took > cfg.ShutdownTimeout/2 {
		t.Fatalf("shutdown took %v with a stream open", took)
	}
	if _, ok := st.next(t); ok {
		t.Fatal("the stream did not end")
	}
	s.http.Transport.(*http.Transport).CloseIdleConnections()
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// keyServer answers each Idempotency-Key with the scripted statuses in
// turn, then 201, and remembers the keys and tokens it saw.
type keyServer struct {
	mu     sync.Mutex
	script []func(w http.ResponseWriter)
	seen   []string
	auths  []string
}

func (s *keyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := len(s.seen)
	s.seen = append(s.seen, r.Header.Get("Idempotency-Key"))
	s.auths = append(s.auths, r.Header.Get("Authorization"))
	s.mu.Unlock()
	if n < len(s.script) {
		s.script[n](w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if n > 0 {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.WriteHeader(http.StatusCreated)
	fmt.Fprint(w, `{"id":"250092227018125313","sale_id":"1","user_id":"alice","quantity":1}`)
}

func problem(status int, slug string, retryAfter string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/problem+json")
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"type":"https://flashsale.example/problems/%s","title":"x","status":%d}`, slug, status)
	}
}

func testClient(url string, std bool, retries int, timeout time.Duration) *Client {
	return NewClient(ClientOptions{URL: url, Body: []byte(`{"sale_id":"1","quantity":1}`), Conns: 8,
		Timeout: timeout, Retries: retries, Backoff: time.Millisecond, RetryCap: 5 * time.Millisecond, Std: std})
}

// bothClients runs a test with the lean client and with net/http.
func bothClients(t *testing.T, test func(t *testing.T, std bool)) {
	for _, std := range []bool{false, true} {
		t.Run(map[bool]string{false: "raw", true: "std"}[std], func(t *testing.T) { test(t, std) })
	}
}

func TestRetriesKeepTheIdempotencyKeyUntilTheOrderIsAnswered(t *testing.T) {
	bothClients(t, func(t *testing.T, std bool) {
		ks := &keyServer{script: []func(http.ResponseWriter){
			func(http.ResponseWriter) { time.Sleep(300 * time.Millisecond) }, // times out
			problem(503, "overloaded", "1"),                                  // shed
			problem(409, "idempotency-key-in-use", ""),                       // the first is still running
			problem(500, "internal-error", ""),                               // a failure
		}}
		srv := httptest.NewServer(ks)
		defer srv.Close()
		c := testClient(srv.URL, std, 4, 200*time.Millisecond)
		defer c.Close()
		r := c.Buy(context.Background(), "Bearer tok-alice", "key-1")
		if r.Outcome != OutCreated || r.OrderID != "250092227018125313" || r.Attempts != 5 || !r.Replayed {
			t.Fatalf("result %+v, want a replayed 201 after 5 attempts", r)
		}
		for i, k := range ks.seen {
			if k != "key-1" || ks.auths[i] != "Bearer tok-alice" {
				t.Errorf("attempt %d sent key %q auth %q", i, k, ks.auths[i])
			}
		}
		s := c.stats
		if s.Timeouts.Load() != 1 || s.Retries.Load() != 4 || s.Recovered.Load() != 1 || s.Status[503].Load() != 1 || s.Status[201].Load() != 1 {
			t.Errorf("stats: timeouts %d retries %d recovered %d 503 %d 201 %d", s.Timeouts.Load(), s.Retries.Load(),
				s.Recovered.Load(), s.Status[503].Load(), s.Status[201].Load())
		}
	})
}

func TestRetriesAreBounded(t *testing.T) {
	bothClients(t, func(t *testing.T, std bool) {
		var hits atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			problem(503, "overloaded", "1")(w)
		}))
		defer srv.Close()
		c := testClient(srv.URL, std, 2, time.Second)
		defer c.Close()
		start := time.Now()
		r := c.Buy(context.Background(), "Bearer t", "k")
		if r.Outcome != OutOverloaded || r.Attempts != 3 || hits.Load() != 3 {
			t.Fatalf("result %+v after %d hits, want overloaded after 3 attempts", r, hits.Load())
		}
		if !r.Outcome.unresolved5xx() {
			t.Error("a 503 left after the retries must count as unresolved")
		}
		if time.Since(start) > time.Second {
			t.Errorf("Retry-After 1 s was not capped by --retry-cap: took %s", time.Since(start))
		}
	})
}

func TestAnswersAreClassifiedWithoutRetry(t *testing.T) {
	cases := map[string]struct {
		h    func(http.ResponseWriter)
		want Outcome
	}{
		"sold out":      {problem(409, "sold-out", ""), OutSoldOut},
		"limit reached": {problem(409, "purchase-limit-reached", ""), OutLimit},
		"rate limited":  {problem(429, "rate-limited", "1"), OutRateLimited},
		"validation":    {problem(400, "validation-error", ""), OutOther},
		"ok":            {func(w http.ResponseWriter) { w.WriteHeader(200) }, OutOK},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var hits atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1); tc.h(w) }))
			defer srv.Close()
			c := testClient(srv.URL, false, 3, time.Second)
			defer c.Close()
			if r := c.Buy(context.Background(), "Bearer t", "k"); r.Outcome != tc.want || hits.Load() != 1 {
				t.Fatalf("outcome %s after %d attempts, want %s after 1", r.Outcome, hits.Load(), tc.want)
			}
		})
	}
}

func TestConnectionsAreKeptAlive(t *testing.T) {
	bothClients(t, func(t *testing.T, std bool) {
		var conns atomic.Int64
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			problem(409, "sold-out", "")(w)
		}))
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		srv.Start()
		defer srv.Close()
		c := testClient(srv.URL, std, 0, time.Second)
		defer c.Close()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 50 {
					c.Buy(context.Background(), "Bearer t", "k")
				}
			})
		}
		wg.Wait()
		if n := conns.Load(); n > 8 {
			t.Errorf("%d connections for 200 requests from 4 senders: not kept alive", n)
		}
	})
}

func TestRawClientReadsEveryBodyFraming(t *testing.T) {
	cases := map[string]struct {
		resp     string
		code     int
		body     string
		keep     bool
		replayed bool
		retry    time.Duration
	}{
		"content-length":   {"HTTP/1.1 201 Created\r\nContent-Length: 11\r\nIdempotent-Replayed: true\r\n\r\n{\"id\":\"42\"}", 201, `{"id":"42"}`, true, true, 0},
		"chunked":          {"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nsold\r\n4;x=y\r\n-out\r\n0\r\nTrailer: z\r\n\r\n", 409, "sold-out", true, false, 0},
		"connection close": {"HTTP/1.1 503 Service Unavailable\r\nconnection: Close\r\nretry-after: 2\r\nContent-Length: 2\r\n\r\n{}", 503, "{}", false, false, 2 * time.Second},
		"no length":        {"HTTP/1.0 200 OK\r\n\r\nuntil the end", 200, "until the endNEXT", false, false, 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a, keep, err := readResponse(bufio.NewReader(strings.NewReader(tc.resp+"NEXT")), make([]byte, 64))
			if err != nil || a.code != tc.code || string(a.body) != tc.body ||
				keep != tc.keep || a.replayed != tc.replayed || a.retryAfter != tc.retry {
				t.Fatalf("answer %+v body %q keep %v err %v", a, a.body, keep, err)
			}
		})
	}
	// A body larger than the buffer is read past, so the connection stays usable.
	r := bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"))
	a, keep, err := readResponse(r, make([]byte, 4))
	if err != nil || string(a.body) != "0123" || !keep {
		t.Fatalf("%+v %v %v", a, keep, err)
	}
	if a, _, err := readResponse(r, make([]byte, 4)); err != nil || a.code != 204 {
		t.Fatalf("next response: %+v %v", a, err)
	}
	if _, _, err := readResponse(bufio.NewReader(strings.NewReader("garbage\r\n\r\n")), nil); err == nil {
		t.Error("garbage accepted")
	}
}

func TestReadySubcommand(t *testing.T) {
	var status atomic.Int64
	status.Store(503)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			w.WriteHeader(404)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	ready := func() int {
		return run(context.Background(), []string{"ready", srv.URL}, os.Getenv, io.Discard, io.Discard)
	}
	if code := ready(); code != 1 {
		t.Errorf("503: exit %d, want 1", code)
	}
	status.Store(200)
	if code := ready(); code != 0 {
		t.Errorf("200: exit %d, want 0", code)
	}
}

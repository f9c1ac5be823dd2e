package consumer_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"flashsale/consumer"
	"flashsale/consumer/inbox"
	"flashsale/internal/testenv"
	"flashsale/notify"
)

// webhookPeer is the test's receiver: it records every request and fails
// the first one for the event id in flaky with a 500.
type webhookPeer struct {
	mu       sync.Mutex
	flaky    string
	requests map[string][]int // event id -> statuses answered
	bad      []string         // problems with a request
}

func (p *webhookPeer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get("Webhook-Id")
	wh, err := standardwebhooks.NewWebhook(webhookSecret)
	if err == nil {
		err = wh.Verify(body, r.Header)
	}
	var ev struct{ ID string }
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err != nil:
		p.bad = append(p.bad, "bad signature on "+id+": "+err.Error())
	case json.Unmarshal(body, &ev) != nil || ev.ID != id:
		p.bad = append(p.bad, "Webhook-Id "+id+" is not the body's id "+ev.ID)
	}
	status := http.StatusNoContent
	if id == p.flaky && len(p.requests[id]) == 0 {
		status = http.StatusInternalServerError
	}
	p.requests[id] = append(p.requests[id], status)
	w.WriteHeader(status)
}

func (p *webhookPeer) snapshot() (map[string][]int, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string][]int{}
	for k, v := range p.requests {
		out[k] = append([]int(nil), v...)
	}
	return out, append([]string(nil), p.bad...)
}

// webhookSecret is a Standard Webhooks secret (whsec_ + base64 of 32 bytes).
const webhookSecret = "whsec_Zmxhc2hzYWxlLXRlc3Qtd2ViaG9vay1rZXktMzJieXQ="

// TestNotifyPostsEachEventOnce runs the notify consumer over Kafka against
// an httptest receiver: every order event arrives once with a valid
// signature, a 500 is retried, and neither duplicates in the topic nor a
// replay of the whole topic post anything again.
func TestNotifyPostsEachEventOnce(t *testing.T) {
	s := newStack(t)
	sale := s.sale(t, 100)
	var evs []inbox.Event
	for i, next := range []string{"paid", "cancelled", "expired"} {
		id := testenv.NextOrderID()
		evs = append(evs, testenv.OrderEvent("created", id, sale, i+1, ""), testenv.OrderEvent(next, id, sale, i+1, "buyer"))
	}
	peer := &webhookPeer{flaky: evs[2].ID, requests: map[string][]int{}}
	srv := httptest.NewServer(peer)
	defer srv.Close()
	newConsumer := func(group string) *consumer.Consumer {
		sender, err := notify.New(notify.Config{URL: srv.URL, Secret: webhookSecret, BackoffMin: 5 * time.Millisecond, Log: testenv.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.consumerConfig(t, "notify")
		cfg.GroupID += group
		c, err := consumer.New(cfg, s.db, sender)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	s.produce(t, evs...)
	c := newConsumer("")
	r := start(t, c)
	eventually(t, 30*time.Second, "every event posted", func() bool { return c.Stats().Applied == int64(len(evs)) })

	s.produce(t, evs...) // redelivered
	eventually(t, 30*time.Second, "the duplicates skipped", func() bool { return c.Stats().Duplicates == int64(len(evs)) })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	replay := newConsumer("-replay")
	r = start(t, replay)
	eventually(t, 30*time.Second, "the replay skipped", func() bool { return replay.Stats().Duplicates == int64(2*len(evs)) })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}

	got, bad := peer.snapshot()
	for _, b := range bad {
		t.Error(b)
	}
	if len(got) != len(evs) {
		t.Errorf("%d event ids posted, want %d", len(got), len(evs))
	}
	for _, ev := range evs {
		want := []int{http.StatusNoContent}
		if ev.ID == peer.flaky {
			want = []int{http.StatusInternalServerError, http.StatusNoContent}
		}
		if st := got[ev.ID]; len(st) != len(want) || st[len(st)-1] != want[len(want)-1] || st[0] != want[0] {
			t.Errorf("%s %s answered %v, want %v", ev.Type, ev.ID, st, want)
		}
	}
	var sent, flakyTries int
	_ = s.db.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE status_code = 204 AND sent_at IS NOT NULL),
		max(tries) FILTER (WHERE event_id = $1) FROM notifications`, peer.flaky).Scan(&sent, &flakyTries)
	if sent != len(evs) || flakyTries != 2 {
		t.Errorf("notifications: %d sent, the flaky one in %d tries", sent, flakyTries)
	}
}

package live_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"flashsale/internal/testenv"
	"flashsale/live"
)

// node is a private channel on the shared Redis node 1, and a client.
type node struct {
	channel string
	addr    string
}

func newNode(t testing.TB) node {
	cfg := testenv.Base(t)
	return node{channel: testenv.RedisPrefix(t, cfg.RedisAddrs[:1]) + ":live", addr: cfg.RedisAddrs[0]}
}

func (n node) client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: n.addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// runHub runs a hub on its own connection until the test ends, and waits
// until it takes subscribers.
func runHub(t testing.TB, n node, poll time.Duration) *live.Hub {
	t.Helper()
	h := live.NewHub(n.client(t), live.HubConfig{Channel: n.channel, Poll: poll})
	run(t, h.Run)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := h.Subscribe("probe", nil)
		if err == nil {
			s.Close()
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub never started: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// run runs fn until the test ends.
func run(t testing.TB, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

func runPublisher(t testing.TB, n node) *live.Publisher {
	p := live.NewPublisher(n.client(t), n.channel, nil)
	run(t, p.Run)
	return p
}

func event(topic string, i int) *live.Event {
	return live.NewEvent(topic, "test", fmt.Sprint(i), fmt.Appendf(nil, `{"n":%d}`, i))
}

// next is the subscriber's next event, or fails the test after a while.
func next(t *testing.T, s *live.Sub) (*live.Event, bool) {
	t.Helper()
	select {
	case ev, ok := <-s.Events():
		return ev, ok
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return nil, false
	}
}

// TestHubFansOutAcrossInstances: an event published by one instance
// reaches the subscribers of its topic on every hub, through Redis, and
// no one else.
func TestHubFansOutAcrossInstances(t *testing.T) {
	n := newNode(t)
	a, b := runHub(t, n, 0), runHub(t, n, 0)
	pub := runPublisher(t, n)
	var subs []*live.Sub
	for _, h := range []*live.Hub{a, b, b} {
		s, err := h.Subscribe("order:1", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		subs = append(subs, s)
	}
	other, err := b.Subscribe("order:2", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	pub.Publish(event("order:1", 7))
	for i, s := range subs {
		ev, ok := next(t, s)
		if !ok || ev.ID != "7" || string(ev.Data) != `{"n":7}` || string(ev.Frame()) != "id: 7\nevent: test\ndata: {\"n\":7}\n\n" {
			t.Fatalf("subscriber %d: %v %+v", i, ok, ev)
		}
	}
	select {
	case ev := <-other.Events():
		t.Fatalf("another topic's subscriber got %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestHubDropsSlowSubscriber: a subscriber that does not read is dropped
// once its buffer is full, and the one that reads gets every event.
func TestHubDropsSlowSubscriber(t *testing.T) {
	n := newNode(t)
	h := runHub(t, n, 0)
	pub := runPublisher(t, n)
	slow, err := h.Subscribe("sale:x", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, err := h.Subscribe("sale:x", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	// In step: the fast one takes each event before the next is sent.
	const events = 4 * live.Buffer
	for i := range events {
		pub.Publish(event("sale:x", i))
		ev, ok := next(t, fast)
		if !ok || ev.ID != fmt.Sprint(i) {
			t.Fatalf("fast subscriber's event %d: %v %+v", i, ok, ev)
		}
	}
	got := 0
	for range slow.Events() {
		got++
	}
	if got != live.Buffer {
		t.Fatalf("slow subscriber got %d events before its channel closed, want its buffer (%d)", got, live.Buffer)
	}
	if _, dropped := h.Stats(); dropped != 1 {
		t.Fatalf("dropped %d subscribers, want 1", dropped)
	}
}

// TestHubPollsWhileSubscribed: a polled topic delivers a change once,
// and its poller stops with the last subscriber.
func TestHubPollsWhileSubscribed(t *testing.T) {
	n := newNode(t)
	h := runHub(t, n, 10*time.Millisecond)
	var state, polls atomic.Int64
	poll := func(context.Context) (*live.Event, error) {
		polls.Add(1)
		v := int(state.Load())
		return event("sale:p", v), nil
	}
	s, err := h.Subscribe("sale:p", poll)
	if err != nil {
		t.Fatal(err)
	}
	if ev, _ := next(t, s); ev.ID != "0" {
		t.Fatalf("first poll: %+v", ev)
	}
	state.Store(1)
	if ev, _ := next(t, s); ev.ID != "1" {
		t.Fatalf("after a change: %+v", ev)
	}
	select {
	case ev := <-s.Events():
		t.Fatalf("unchanged state delivered again: %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
	s.Close()
	time.Sleep(50 * time.Millisecond) // a poll in flight finishes
	before := polls.Load()
	time.Sleep(100 * time.Millisecond)
	if after := polls.Load(); after != before {
		t.Fatalf("poller kept polling without subscribers: %d → %d polls", before, after)
	}
}

// TestHubCloseEndsSubscribers: closing the hub (server shutdown) closes
// every subscriber's channel and refuses new ones.
func TestHubCloseEndsSubscribers(t *testing.T) {
	n := newNode(t)
	h := runHub(t, n, 0)
	s, err := h.Subscribe("order:9", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if _, ok := next(t, s); ok {
		t.Fatal("subscriber still open after Close")
	}
	s.Close()
	if _, err := h.Subscribe("order:9", nil); err != live.ErrClosed {
		t.Fatalf("Subscribe after Close: %v, want ErrClosed", err)
	}
}

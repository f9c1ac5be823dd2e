package live

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrClosed is Subscribe's answer when the hub is not running: not started
// yet, or shutting down.
var ErrClosed = errors.New("live: hub closed")

// Buffer is how many events a subscriber may fall behind before it is
// dropped. Small: a subscriber that cannot take a few events is gone or
// stuck, and every event it holds is memory.
const Buffer = 16

// PollFunc reads the current state of a topic; a Hub calls it every poll
// interval while the topic has local subscribers.
type PollFunc func(ctx context.Context) (*Event, error)

// HubConfig tunes a Hub; zero fields take the defaults.
type HubConfig struct {
	Channel string        // the Redis channel of every instance's messages
	Poll    time.Duration // between two polls of a polled topic (500ms)
	Log     *slog.Logger
}

// Hub fans the events of one Redis subscription out to the local
// subscribers of their topic. A send never waits: a subscriber whose buffer
// is full is dropped (its channel closes), so one slow client cannot hold
// up the others.
type Hub struct {
	rdb redis.UniversalClient
	cfg HubConfig

	mu      sync.Mutex
	running context.Context // nil until Run; Done once closing
	open    bool            // subscriptions accepted
	topics  map[string]*topic
	polls   sync.WaitGroup

	delivered, dropped atomic.Uint64
}

type topic struct {
	subs     map[*Sub]struct{}
	stopPoll context.CancelFunc // nil when not polled
}

// Sub is one subscriber's view of a topic.
type Sub struct {
	hub   *Hub
	topic string
	ch    chan *Event
	gone  bool // removed from its topic; ch is closed (hub.mu)
}

// NewHub returns a hub over rdb's subscription to cfg.Channel.
func NewHub(rdb redis.UniversalClient, cfg HubConfig) *Hub {
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Hub{rdb: rdb, cfg: cfg, topics: map[string]*topic{}}
}

// Stats counts the events handed to subscribers and the subscribers
// dropped for being too slow.
func (h *Hub) Stats() (delivered, dropped uint64) { return h.delivered.Load(), h.dropped.Load() }

// Subscribers is how many subscribers the hub holds.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, t := range h.topics {
		n += len(t.subs)
	}
	return n
}

// Run holds the instance's subscription and fans its messages out until
// ctx ends, then closes every subscriber. The subscription reconnects by
// itself after a Redis failure; messages published meanwhile are lost.
func (h *Hub) Run(ctx context.Context) error {
	ps := h.rdb.Subscribe(ctx, h.cfg.Channel)
	defer ps.Close()
	// Subscribers are accepted once Redis confirmed the subscription: an
	// event published after a Subscribe returned then reaches it.
	for {
		if _, err := ps.Receive(ctx); err == nil {
			break
		} else if ctx.Err() != nil {
			return nil
		} else {
			h.cfg.Log.WarnContext(ctx, "live subscription failed, retrying", "channel", h.cfg.Channel, "err", err)
			h.pause(ctx, time.Second)
		}
	}
	h.mu.Lock()
	h.running, h.open = ctx, true
	h.mu.Unlock()
	defer h.polls.Wait()
	defer h.Close()
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	for {
		msg, err := ps.ReceiveMessage(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			h.cfg.Log.WarnContext(ctx, "live subscription failed, reconnecting", "channel", h.cfg.Channel, "err", err)
			h.pause(ctx, 100*time.Millisecond)
			continue
		}
		h.receive(ctx, msg.Payload)
	}
}

// receive delivers a pub/sub message to the local subscribers of its
// topic. Every instance gets every order's message and most topics have no
// subscriber here, so a message is dropped on its topic alone, before it
// is decoded and its frame rendered: three allocations and a copy of the
// event per order and instance, for nothing.
func (h *Hub) receive(ctx context.Context, msg string) {
	topic, _, _ := strings.Cut(msg, "\n")
	if !h.watched(topic) {
		return
	}
	ev, err := decode(msg)
	if err != nil {
		h.cfg.Log.WarnContext(ctx, "live message ignored", "err", err)
		return
	}
	h.Deliver(ev)
}

// watched says whether topic has a local subscriber.
func (h *Hub) watched(topic string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.topics[topic] != nil
}

func (h *Hub) pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Close ends every subscriber's stream and refuses new ones. The server
// calls it when shutdown begins, so that open streams do not hold the
// shutdown up; Run calls it when it returns.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.open = false
	for name, t := range h.topics {
		for s := range t.subs {
			h.remove(t, s)
		}
		delete(h.topics, name)
	}
}

// Subscribe adds a subscriber to a topic. With poll, the first local
// subscriber starts a poller that delivers poll's event whenever it
// differs from the last one; the last subscriber to leave stops it.
func (h *Hub) Subscribe(name string, poll PollFunc) (*Sub, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.open || h.running.Err() != nil {
		return nil, ErrClosed
	}
	t := h.topics[name]
	if t == nil {
		t = &topic{subs: map[*Sub]struct{}{}}
		h.topics[name] = t
	}
	s := &Sub{hub: h, topic: name, ch: make(chan *Event, Buffer)}
	t.subs[s] = struct{}{}
	if poll != nil && t.stopPoll == nil {
		pctx, cancel := context.WithCancel(h.running)
		t.stopPoll = cancel
		h.polls.Add(1)
		go h.poll(pctx, name, poll)
	}
	return s, nil
}

// Events delivers the topic's events; it is closed when the subscriber is
// dropped or the hub closes.
func (s *Sub) Events() <-chan *Event { return s.ch }

// Close leaves the topic; safe to call more than once.
func (s *Sub) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.topics[s.topic]; t != nil && !s.gone {
		h.remove(t, s)
		if len(t.subs) == 0 {
			delete(h.topics, s.topic)
		}
	}
}

// remove takes s out of t and closes its channel (h.mu held); the poller
// stops with the topic's last subscriber.
func (h *Hub) remove(t *topic, s *Sub) {
	delete(t.subs, s)
	s.gone = true
	close(s.ch)
	if len(t.subs) == 0 && t.stopPoll != nil {
		t.stopPoll()
	}
}

// Deliver hands ev to every local subscriber of its topic without
// waiting: a subscriber whose buffer is full is dropped.
func (h *Hub) Deliver(ev *Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[ev.Topic]
	if t == nil {
		return
	}
	for s := range t.subs {
		select {
		case s.ch <- ev:
			h.delivered.Add(1)
		default:
			h.dropped.Add(1)
			h.remove(t, s)
		}
	}
	if len(t.subs) == 0 {
		delete(h.topics, ev.Topic)
	}
}

// poll delivers the topic's state when it changed, at most once per poll
// interval however often it changes: a sale selling a thousand units a
// second is still a few events a second.
func (h *Hub) poll(ctx context.Context, name string, fn PollFunc) {
	defer h.polls.Done()
	tick := time.NewTicker(h.cfg.Poll)
	defer tick.Stop()
	var last []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ev, err := fn(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			h.cfg.Log.WarnContext(ctx, "live poll failed", "topic", name, "err", err)
			continue
		case bytes.Equal(ev.Data, last):
			continue
		}
		last = ev.Data
		h.Deliver(ev)
	}
}

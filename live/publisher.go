package live

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Queue is how many events may wait for the publisher; beyond it they are
// dropped (a notification, not the truth), never waited for.
const Queue = 8192

// pipelineMax bounds the PUBLISHes sent in one round trip.
const pipelineMax = 256

// publishTimeout bounds one pipelined round trip.
const publishTimeout = 2 * time.Second

// Publisher PUBLISHes events to every instance's hub, off the caller's
// path: Publish only queues, and one goroutine sends what queued in one
// pipelined round trip, so a burst of orders costs a share of a round trip
// each, and no order waits for Redis.
type Publisher struct {
	rdb     redis.UniversalClient
	channel string
	queue   chan func() *Event
	log     *slog.Logger

	published, dropped atomic.Uint64
}

// NewPublisher returns a publisher to channel on rdb.
func NewPublisher(rdb redis.UniversalClient, channel string, log *slog.Logger) *Publisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{rdb: rdb, channel: channel, queue: make(chan func() *Event, Queue), log: log}
}

// Stats counts the events sent to Redis and those dropped (queue full or
// Redis failing).
func (p *Publisher) Stats() (published, dropped uint64) { return p.published.Load(), p.dropped.Load() }

// Publish queues ev without waiting; a full queue drops it.
func (p *Publisher) Publish(ev *Event) {
	p.PublishFunc(func() *Event { return ev })
}

// PublishFunc queues an event that render makes, later, on the
// publisher's goroutine: the caller (an order's request) pays for a
// channel send, not for the event's JSON. A full queue drops it.
func (p *Publisher) PublishFunc(render func() *Event) {
	select {
	case p.queue <- render:
	default:
		p.dropped.Add(1)
	}
}

// Run sends queued events until ctx ends, then what is still queued.
func (p *Publisher) Run(ctx context.Context) error {
	batch := make([]*Event, 0, pipelineMax)
	for {
		select {
		case <-ctx.Done():
			p.flushQueued(batch[:0])
			return nil
		case render := <-p.queue:
			p.send(context.Background(), p.fill(append(batch[:0], render())))
		}
	}
}

// fill adds what else queued, up to pipelineMax.
func (p *Publisher) fill(batch []*Event) []*Event {
	for len(batch) < pipelineMax {
		select {
		case render := <-p.queue:
			batch = append(batch, render())
		default:
			return batch
		}
	}
	return batch
}

// flushQueued sends what queued before shutdown: transitions that
// committed just before it still reach their subscribers on other
// instances. It takes one publish timeout at most.
func (p *Publisher) flushQueued(batch []*Event) {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	for len(p.queue) > 0 && ctx.Err() == nil {
		p.send(ctx, p.fill(batch[:0]))
	}
}

func (p *Publisher) send(ctx context.Context, batch []*Event) {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	_, err := p.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, ev := range batch {
			pipe.Publish(ctx, p.channel, ev.encode())
		}
		return nil
	})
	if err != nil {
		p.dropped.Add(uint64(len(batch)))
		p.log.WarnContext(ctx, "live publish failed", "events", len(batch), "err", err)
		return
	}
	p.published.Add(uint64(len(batch)))
}

// Package batch groups concurrent calls into batches, the way a group
// commit does: each worker takes every call queued while its previous
// batch was in flight and serves them with one flush. Under light load a
// batch is one call and nothing waits; under a burst one round trip
// carries many calls. Callers see an ordinary blocking call.
package batch

import (
	"context"
	"errors"
)

// ErrStopped is returned for a call submitted after the batcher stopped.
var ErrStopped = errors.New("batch: stopped")

// Result is the outcome of one call of a batch.
type Result[T any] struct {
	Val T
	Err error
}

// Flush serves one batch: out[i] is the outcome of reqs[i]. It gets a
// context that is not cancelled when Run's is, so a batch taken is served.
type Flush[Req, Res any] func(ctx context.Context, reqs []Req, out []Result[Res])

type call[Req, Res any] struct {
	req  Req
	done chan Result[Res] // buffered: a worker never blocks on a caller
}

// Batcher runs workers that flush the queued calls in batches of at most
// max.
type Batcher[Req, Res any] struct {
	flush   Flush[Req, Res]
	queue   chan *call[Req, Res]
	max     int
	workers int
	stopped chan struct{}
}

// New returns a batcher of workers concurrent flushes of up to max calls.
func New[Req, Res any](flush Flush[Req, Res], maxBatch, workers int) *Batcher[Req, Res] {
	return &Batcher[Req, Res]{flush: flush, queue: make(chan *call[Req, Res], maxBatch*workers*4),
		max: maxBatch, workers: workers, stopped: make(chan struct{})}
}

// Do queues req and waits for its outcome. Once queued it keeps waiting
// even when ctx is cancelled: the call may take effect, and a caller must
// not act as if it had not.
func (b *Batcher[Req, Res]) Do(ctx context.Context, req Req) (Res, error) {
	c := &call[Req, Res]{req: req, done: make(chan Result[Res], 1)}
	var zero Res
	select {
	case b.queue <- c:
	case <-b.stopped:
		return zero, ErrStopped
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	select {
	case r := <-c.done:
		return r.Val, r.Err
	case <-b.stopped:
		select {
		case r := <-c.done:
			return r.Val, r.Err
		default:
			return zero, ErrStopped // queued after the last flush: never served
		}
	}
}

// Run flushes batches until ctx is done, then flushes what is queued and
// returns.
func (b *Batcher[Req, Res]) Run(ctx context.Context) {
	done := make(chan struct{})
	for range b.workers {
		go func() { b.work(ctx); done <- struct{}{} }()
	}
	for range b.workers {
		<-done
	}
	close(b.stopped)
}

func (b *Batcher[Req, Res]) work(ctx context.Context) {
	batch := make([]*call[Req, Res], 0, b.max)
	for {
		select {
		case c := <-b.queue:
			batch = b.fill(append(batch[:0], c))
		case <-ctx.Done():
			for batch = b.fill(batch[:0]); len(batch) > 0; batch = b.fill(batch[:0]) {
				b.serve(context.WithoutCancel(ctx), batch)
			}
			return
		}
		b.serve(context.WithoutCancel(ctx), batch)
	}
}

// fill adds whatever is queued, without waiting, up to max.
func (b *Batcher[Req, Res]) fill(batch []*call[Req, Res]) []*call[Req, Res] {
	for len(batch) < b.max {
		select {
		case c := <-b.queue:
			batch = append(batch, c)
		default:
			return batch
		}
	}
	return batch
}

func (b *Batcher[Req, Res]) serve(ctx context.Context, batch []*call[Req, Res]) {
	reqs := make([]Req, len(batch))
	for i, c := range batch {
		reqs[i] = c.req
	}
	out := make([]Result[Res], len(batch))
	b.flush(ctx, reqs, out)
	for i, c := range batch {
		c.done <- out[i]
	}
}

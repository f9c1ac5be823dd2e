package batch_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"flashsale/internal/batch"
)

// TestMain fails the package when a test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// doubler flushes by doubling each request, slowly, and records the sizes
// of the batches it saw.
type doubler struct {
	delay time.Duration
	mu    sync.Mutex
	sizes []int
}

func (d *doubler) flush(_ context.Context, reqs []int, out []batch.Result[int]) {
	time.Sleep(d.delay)
	d.mu.Lock()
	d.sizes = append(d.sizes, len(reqs))
	d.mu.Unlock()
	for i, r := range reqs {
		out[i].Val = 2 * r
		if r < 0 {
			out[i].Err = errors.New("negative")
		}
	}
}

func start(t *testing.T, b *batch.Batcher[int, int]) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// TestConcurrentCallsShareFlushes releases 200 callers at once against a
// slow flush: every caller gets its own outcome, and the calls travel in
// far fewer flushes than one each, none above the maximum.
func TestConcurrentCallsShareFlushes(t *testing.T) {
	d := &doubler{delay: 2 * time.Millisecond}
	b := batch.New(d.flush, 16, 2)
	start(t, b)
	const n = 200
	var wg sync.WaitGroup
	var wrong atomic.Int32
	gate := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-gate
			req := i
			if i%7 == 0 {
				req = -i
			}
			v, err := b.Do(context.Background(), req)
			if v != 2*req || (err != nil) != (req < 0) {
				wrong.Add(1)
			}
		})
	}
	close(gate)
	wg.Wait()
	if wrong.Load() != 0 {
		t.Fatalf("%d callers got another call's outcome", wrong.Load())
	}
	total := 0
	for _, s := range d.sizes {
		total += s
		if s > 16 {
			t.Errorf("a batch of %d, above the maximum 16", s)
		}
	}
	if total != n || len(d.sizes) > n/4 {
		t.Errorf("%d calls in %d flushes; want %d calls in at most %d", total, len(d.sizes), n, n/4)
	}
}

// TestQueuedCallOutlivesItsCaller cancels a caller whose call is already
// queued: it still waits for the outcome, because the call may take effect.
func TestQueuedCallOutlivesItsCaller(t *testing.T) {
	d := &doubler{delay: 50 * time.Millisecond}
	b := batch.New(d.flush, 4, 1)
	start(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	v, err := b.Do(ctx, 21)
	if v != 42 || err != nil {
		t.Fatalf("Do = %d, %v; want 42, nil after the flush", v, err)
	}
}

// TestStopServesWhatIsQueued stops the batcher while calls are queued
// behind a slow flush: each is served, and a call after the stop is
// refused without reaching the flush.
func TestStopServesWhatIsQueued(t *testing.T) {
	d := &doubler{delay: 20 * time.Millisecond}
	b := batch.New(d.flush, 1, 1)
	stop := start(t, b)
	var wg sync.WaitGroup
	results := make([]int, 5)
	for i := range results {
		wg.Go(func() { results[i], _ = b.Do(context.Background(), i+1) })
	}
	time.Sleep(5 * time.Millisecond) // the first flush is running, the rest queued
	stop()
	wg.Wait()
	for i, v := range results {
		if v != 2*(i+1) {
			t.Errorf("call %d: %d, want %d", i+1, v, 2*(i+1))
		}
	}
	if _, err := b.Do(context.Background(), 1); !errors.Is(err, batch.ErrStopped) {
		t.Errorf("Do after stop: %v, want ErrStopped", err)
	}
	if len(d.sizes) != 5 {
		t.Errorf("%d flushes, want 5", len(d.sizes))
	}
}

// TestCancelledBeforeQueued returns the caller's error when the queue is
// full and the caller gives up: the call never reaches a flush.
func TestCancelledBeforeQueued(t *testing.T) {
	b := batch.New((&doubler{}).flush, 1, 1) // not running: nothing drains the queue
	ctx, cancel := context.WithCancel(context.Background())
	for range 4 { // the queue holds max*workers*4
		go func() { _, _ = b.Do(ctx, 1) }()
	}
	time.Sleep(10 * time.Millisecond)
	cancel()
	if _, err := b.Do(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Do on a full queue with a cancelled caller: %v", err)
	}
	start(t, b) // serve the four queued calls so no goroutine is left
}

package invredis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"flashsale/internal/testenv"
	"flashsale/inventory/invredis"
)

// failingRebuilder fails its first fail rounds, then succeeds, and counts
// the rounds asked of it.
type failingRebuilder struct{ calls, fail int }

func (r *failingRebuilder) RebuildAll(context.Context) (int, error) {
	r.calls++
	if r.calls <= r.fail {
		return 0, errors.New("i/o timeout")
	}
	return 1, nil
}

// TestWatcherBacksOffAFailingRound: a round that keeps failing (one sale
// too heavy for the node's timeout, PostgreSQL away) is tried again after
// 1, 2, 4, 8, 16 s and then every 30 s, not on every look: in a minute of
// looks, six attempts instead of sixty. Once it succeeds the next round
// (Again later) runs on time.
func TestWatcherBacksOffAFailingRound(t *testing.T) {
	f := newFixture(t) // a fresh prefix: the first look creates the epoch, a detection
	rb := &failingRebuilder{fail: 6}
	w := invredis.NewWatcher(rb, f.stock, invredis.WatchConfig{Every: time.Second, Again: 2 * time.Minute}, testenv.Logger(t))
	t0 := time.Now()
	var attempts []int // seconds at which a round was asked
	for sec := 0; sec < 60; sec++ {
		before := rb.calls
		w.Tick(context.Background(), func() time.Time { return t0.Add(time.Duration(sec) * time.Second) })
		if rb.calls > before {
			attempts = append(attempts, sec)
		}
	}
	want := []int{0, 1, 3, 7, 15, 31}
	if len(attempts) != len(want) {
		t.Fatalf("rounds asked at seconds %v, want %v", attempts, want)
	}
	for i := range want {
		if attempts[i] != want[i] {
			t.Fatalf("rounds asked at seconds %v, want %v", attempts, want)
		}
	}
	if s := w.Stats(); s.Failed != 6 || s.Rounds != 0 || s.Detections != 1 {
		t.Fatalf("stats %+v, want 6 failed rounds, none complete, one detection", s)
	}
	// The seventh attempt, 30 s after the sixth, succeeds; the second round
	// is due two minutes after the detection and runs then, not put off.
	for _, sec := range []int{61, 120} {
		w.Tick(context.Background(), func() time.Time { return t0.Add(time.Duration(sec) * time.Second) })
	}
	if s := w.Stats(); s.Rounds != 2 || rb.calls != 8 {
		t.Fatalf("stats %+v after %d rounds asked, want both rounds done in 8", s, rb.calls)
	}
}

package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// stalled simulates the classic coordinated-omission case at a fixed rate
// of 1000/s for 10 s: the service answers in 1 ms, except that it stalls
// from 5 s to 6 s, and every request that should have been sent during the
// stall is answered only when it ends.
func stalled(t *testing.T) Merged {
	t.Helper()
	start := time.Unix(1_700_000_000, 0)
	rec := NewRecorder(start, 1)
	stallFrom, stallTo := start.Add(5*time.Second), start.Add(6*time.Second)
	for i := range 10_000 {
		intended := start.Add(time.Duration(i) * time.Millisecond)
		sent, done := intended, intended.Add(time.Millisecond)
		if !intended.Before(stallFrom) && intended.Before(stallTo) {
			// A closed-loop sender would have sent only the first of these,
			// late; the open model counts each from when it was due.
			sent, done = stallTo, stallTo.Add(time.Millisecond)
		}
		rec.Record(0, OutOK, intended, sent, done)
	}
	return rec.Merge()
}

func TestCorrectedPercentilesShowTheStallForEveryRequestItHeld(t *testing.T) {
	m := stalled(t)
	all := statsOf(m.All)
	// 1000 of 10,000 requests waited between 1 ms and 1 s, uniformly: the
	// top 10 % is the stall.
	if all.Count != 10_000 {
		t.Fatalf("count %d", all.Count)
	}
	for _, c := range []struct {
		name     string
		got, min float64
		max      float64
	}{
		{"p50", all.P50, 0.9, 1.1},
		{"p90", all.P90, 0.9, 5},       // the edge of the stall
		{"p95", msAt(m, 95), 450, 550}, // half way into it
		{"p99", all.P99, 880, 920},     // 100 requests waited more than 900 ms
		{"p99.9", all.P999, 985, 1005}, // the first ones waited the whole second
		{"max", all.Max, 995, 1010},
	} {
		if c.got < c.min || c.got > c.max {
			t.Errorf("%s = %.2f ms, want %.0f–%.0f", c.name, c.got, c.min, c.max)
		}
	}
	// Every request due during the stall shows it: 1000 of them waited more
	// than the 1 ms answer time, 900 more than 100 ms.
	if n := countAbove(m, 2*time.Millisecond); n < 995 || n > 1001 {
		t.Errorf("%d requests above 2 ms, want the 1000 held by the stall", n)
	}
	if n := countAbove(m, 100*time.Millisecond); n < 895 || n > 905 {
		t.Errorf("%d requests above 100 ms, want 900", n)
	}
	// The uncorrected view (from the actual send) hides the stall entirely:
	// that is the omission the open model corrects.
	if svc := statsOf(m.Service); svc.P99 > 1.1 || svc.Max > 1.1 {
		t.Errorf("service time p99 %.2f max %.2f: the simulation should hide the stall there", svc.P99, svc.Max)
	}
	// The per-second series puts the stall's answers in second 6.
	if got := m.Series[6].Counts[OutOK]; got < 1990 || got > 2010 {
		t.Errorf("second 6 answered %d, want its own 1000 plus the stall's 1000", got)
	}
	if got := m.Series[5].Counts[OutOK]; got > 1 { // the one due at 4.999 s is answered at 5.000 s
		t.Errorf("second 5 answered %d during the stall", got)
	}
}

func msAt(m Merged, q float64) float64 { return float64(m.All.ValueAtQuantile(q)) / 1000 }

func countAbove(m Merged, d time.Duration) int64 {
	var n int64
	for _, b := range m.All.Distribution() {
		if b.From >= micros(d) {
			n += b.Count
		}
	}
	return n
}

// TestOpenModelCountsFromTheIntendedTimeWhenSendersAreStuck runs the real
// scheduler and sender pool: four senders, 400 arrivals/s, and an
// operation that stalls for a second. The senders are all stuck, the
// arrivals queue, and each one's latency still counts from when it was
// due.
func TestOpenModelCountsFromTheIntendedTimeWhenSendersAreStuck(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 3 s")
	}
	sched := Schedule{Rate: 400, Duration: 3 * time.Second}
	// Sixteen senders, not four: on a loaded machine a 1 ms sleep can take
	// several, and four senders then drained the stall's backlog so slowly
	// that arrivals after the stall waited past 100 ms too (a flaky count).
	const senders = 16
	rec := NewRecorder(time.Now(), senders)
	stallFrom, stallTo := rec.start.Add(time.Second), rec.start.Add(2*time.Second)
	var calls atomic.Int64
	op := func(ctx context.Context, seq int64) (Outcome, time.Time) {
		sent := time.Now()
		calls.Add(1)
		if now := time.Now(); !now.Before(stallFrom) && now.Before(stallTo) {
			time.Sleep(time.Until(stallTo))
		}
		time.Sleep(time.Millisecond)
		return OutOK, sent
	}
	st := RunOpen(context.Background(), sched, senders, 10*time.Second, rec, op)
	m := rec.Merge()
	if st.Intended != 1200 || st.Sent != 1200 || st.NotSent != 0 || calls.Load() != 1200 {
		t.Fatalf("intended %d sent %d not sent %d calls %d", st.Intended, st.Sent, st.NotSent, calls.Load())
	}
	// The ~400 arrivals due during the stall waited from up to 1 s down to
	// nothing; about 360 of them more than 100 ms. On a loaded machine the
	// senders drain the backlog more slowly and a few dozen more wait past
	// 100 ms; measured from the send, only those in flight would.
	if n := countAbove(m, 100*time.Millisecond); n < 320 || n > 520 {
		t.Errorf("%d requests above 100 ms, want about 360 (those due in the first 900 ms of the stall)", n)
	}
	all := statsOf(m.All)
	if all.P99 < 850 || all.Max < 950 {
		t.Errorf("corrected p99 %.1f ms, max %.1f ms: the stall is hidden", all.P99, all.Max)
	}
	if st.MaxSendLag < 900*time.Millisecond {
		t.Errorf("max send lag %s, want the stall", st.MaxSendLag)
	}
	// Measured from the actual send only the requests caught in the stall
	// show it: at most one per sender.
	if n := serviceAbove(m, 100*time.Millisecond); n > senders {
		t.Errorf("%d requests above 100 ms of service time, want at most the %d that were in flight", n, senders)
	}
}

func serviceAbove(m Merged, d time.Duration) int64 {
	var n int64
	for _, b := range m.Service.Distribution() {
		if b.From >= micros(d) {
			n += b.Count
		}
	}
	return n
}

func TestOpenModelGivesUpAfterTheGrace(t *testing.T) {
	sched := Schedule{Rate: 100, Duration: 200 * time.Millisecond}
	rec := NewRecorder(time.Now(), 2)
	block := make(chan struct{})
	defer close(block)
	op := func(ctx context.Context, seq int64) (Outcome, time.Time) {
		sent := time.Now()
		if seq == 0 {
			<-block // the only sender is stuck for good
		}
		return OutOK, sent
	}
	done := make(chan RunStats, 1)
	go func() { done <- RunOpen(context.Background(), sched, 1, 300*time.Millisecond, rec, op) }()
	time.Sleep(700 * time.Millisecond)
	block <- struct{}{}
	st := <-done
	m := rec.Merge()
	if st.NotSent != st.Intended-1 || m.Count(OutNotSent) != st.NotSent {
		t.Fatalf("intended %d, not sent %d (recorded %d): every arrival after the stuck one should be given up",
			st.Intended, st.NotSent, m.Count(OutNotSent))
	}
	if !OutNotSent.unresolved5xx() {
		t.Error("a request never sent must fail the no-unretried-5xx check")
	}
}

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"flashsale/auth"
)

// Buyers are the distinct buyers of a run, each with its own token, minted
// before the load starts. A buyer who got all the units the limit allows
// stops pressing "buy", like a real one.
type Buyers struct {
	ids    []string
	auth   []string // "Bearer <jwt>"
	clicks []atomic.Int32
	units  []atomic.Int32 // units the buyer was answered 201 for
	order  []int32        // the order buyers are picked in: a random permutation
	cursor atomic.Int64
	limit  int32
	qty    int32
}

// MintBuyers signs n tokens for buyers prefix0..prefix(n-1), on every core.
func MintBuyers(secret, prefix string, n, limit, qty int, ttl time.Duration) (*Buyers, error) {
	b := &Buyers{ids: make([]string, n), auth: make([]string, n), clicks: make([]atomic.Int32, n),
		units: make([]atomic.Int32, n), order: make([]int32, n), limit: int32(limit), qty: int32(qty)}
	now := time.Now()
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				b.ids[i] = prefix + strconv.Itoa(i)
				tok, err := auth.Mint(secret, b.ids[i], false, ttl, now)
				if err != nil {
					errs[w] = err
					return
				}
				b.auth[i] = "Bearer " + tok
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("mint tokens: %w", err)
		}
	}
	for i := range b.order {
		b.order[i] = int32(i)
	}
	rand.Shuffle(n, func(i, j int) { b.order[i], b.order[j] = b.order[j], b.order[i] })
	return b, nil
}

// Len is the number of buyers.
func (b *Buyers) Len() int { return len(b.ids) }

// satisfied reports whether buyer i cannot be sold another request's units.
func (b *Buyers) satisfied(i int) bool { return b.units[i].Load()+b.qty > b.limit }

// Next picks the next buyer who still wants units (any buyer when none
// does) and counts the click.
func (b *Buyers) Next() int {
	n := int64(len(b.order))
	var i int
	for tries := int64(0); tries < n; tries++ {
		i = int(b.order[b.cursor.Add(1)%n])
		if !b.satisfied(i) {
			break
		}
	}
	b.clicks[i].Add(1)
	return i
}

// DemandUnits is the units the buyers asked for, each counted up to the
// limit: more than the stock means the sale should have sold out.
func (b *Buyers) DemandUnits() int64 {
	var d int64
	for i := range b.clicks {
		d += int64(min(b.clicks[i].Load()*b.qty, b.limit))
	}
	return d
}

// Op is one logical request of a load: it returns how it ended, and the
// time its first attempt was sent.
type Op func(ctx context.Context, seq int64) (Outcome, time.Time)

// RunStats describe how a load ran, as opposed to what it measured.
type RunStats struct {
	Model      string        `json:"model"`
	Start      time.Time     `json:"start"`
	End        time.Time     `json:"end"`
	Intended   int64         `json:"intended"`     // arrivals the schedule called for (open model)
	Sent       int64         `json:"sent"`         // logical requests sent
	NotSent    int64         `json:"not_sent"`     // given up at the end of the grace period
	MaxSendLag time.Duration `json:"max_send_lag"` // worst delay between an arrival's intended and actual send
	Workers    int           `json:"workers"`
}

// RunOpen runs the open model: arrivals follow sched whatever the answers,
// workers senders take them from a queue, and each latency counts from the
// arrival's intended time. After the schedule, outstanding requests get
// grace to finish; the rest are recorded as not sent, with their latency
// so far.
func RunOpen(ctx context.Context, sched Schedule, workers int, grace time.Duration, rec *Recorder, op Op) RunStats {
	total := sched.Total()
	st := RunStats{Model: "open", Intended: total, Workers: workers, Start: rec.start}
	type job struct {
		seq      int64
		intended time.Time
	}
	jobs := make(chan job, 1<<16)
	// stop closes when the schedule plus grace has passed: what was not
	// sent by then is recorded as not sent instead of stretching the run.
	stop := make(chan struct{})
	watchdog := time.AfterFunc(time.Until(rec.start.Add(sched.Ramp+sched.Duration+grace)), func() { close(stop) })
	defer watchdog.Stop()
	var sent, notSent, maxLag atomic.Int64
	giveUp := func(shard int, intended time.Time) {
		now := time.Now()
		notSent.Add(1)
		rec.Record(shard, OutNotSent, intended, now, now)
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			shard := rec.Shard()
			for j := range jobs {
				select {
				case <-stop:
					giveUp(shard, j.intended)
					continue
				default:
				}
				now := time.Now()
				if lag := int64(now.Sub(j.intended)); lag > maxLag.Load() {
					maxLag.Store(lag) // racy maximum; good enough for a report
				}
				sent.Add(1)
				out, first := op(ctx, j.seq)
				rec.Record(shard, out, j.intended, first, time.Now())
			}
		})
	}
	start := rec.start
	i := int64(0)
schedule:
	for i < total && ctx.Err() == nil {
		now := time.Since(start)
		for ; i < total && sched.Offset(i) <= now; i++ {
			select {
			case jobs <- job{seq: i, intended: start.Add(sched.Offset(i))}:
			case <-stop:
				break schedule
			}
		}
		if i < total {
			time.Sleep(min(sched.Offset(i)-time.Since(start), time.Millisecond))
		}
	}
	close(jobs)
	for shard := rec.Shard(); i < total; i++ {
		giveUp(shard, start.Add(sched.Offset(i)))
	}
	wg.Wait()
	st.End = time.Now()
	st.Sent, st.NotSent, st.MaxSendLag = sent.Load(), notSent.Load(), time.Duration(maxLag.Load())
	return st
}

// RunClosed runs the closed model: vus virtual users each send, wait for
// the answer, think, and send again, until dur has passed. Latency counts
// from the actual send: a closed model measures what it waits for.
func RunClosed(ctx context.Context, vus int, dur, think time.Duration, rec *Recorder, op Op) RunStats {
	st := RunStats{Model: "closed", Workers: vus, Start: rec.start}
	deadline := rec.start.Add(dur)
	var seq, sent atomic.Int64
	var wg sync.WaitGroup
	for range vus {
		wg.Go(func() {
			shard := rec.Shard()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				s := seq.Add(1) - 1
				sent.Add(1)
				out, first := op(ctx, s)
				rec.Record(shard, out, first, first, time.Now())
				if think > 0 {
					time.Sleep(think)
				}
			}
		})
	}
	wg.Wait()
	st.End = time.Now()
	st.Sent = sent.Load()
	return st
}

// Fresh returns buyers sharing these tokens with new counters.
func (b *Buyers) Fresh(limit, qty int) *Buyers {
	return &Buyers{ids: b.ids, auth: b.auth, order: b.order, clicks: make([]atomic.Int32, len(b.ids)),
		units: make([]atomic.Int32, len(b.ids)), limit: int32(limit), qty: int32(qty)}
}

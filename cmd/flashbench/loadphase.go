package main

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// tally is what the flash sale's buyers were answered, as it happens.
type tally struct {
	start        time.Time
	mu           sync.Mutex
	orders       []ClientOrder
	firstSoldOut atomic.Int64 // since start, ns; 0 until a sold-out answer
	last201      atomic.Int64 // since start, ns
}

// created records an order a buyer was answered.
func (t *tally) created(o ClientOrder) {
	done := int64(time.Since(t.start))
	t.mu.Lock()
	t.orders = append(t.orders, o)
	t.mu.Unlock()
	for cur := t.last201.Load(); done > cur && !t.last201.CompareAndSwap(cur, done); cur = t.last201.Load() {
	}
}

// soldOut records a sold-out answer.
func (t *tally) soldOut() {
	done := int64(time.Since(t.start))
	for cur := t.firstSoldOut.Load(); (cur == 0 || done < cur) && !t.firstSoldOut.CompareAndSwap(cur, done); cur = t.firstSoldOut.Load() {
	}
}

// buyOp is one buyer's click in the flash sale, under a new key.
func (b *bench) buyOp(client *Client, buyers *Buyers, t *tally) Op {
	return func(ctx context.Context, seq int64) (Outcome, time.Time) {
		i := buyers.Next()
		r := client.Buy(ctx, buyers.auth[i], "fb-"+b.runID+"-"+strconv.FormatInt(seq, 36))
		switch r.Outcome {
		case OutCreated:
			buyers.units[i].Add(buyers.qty)
			id, _ := strconv.ParseInt(r.OrderID, 10, 64)
			t.created(ClientOrder{Buyer: buyers.ids[i], OrderID: id})
		case OutSoldOut:
			t.soldOut()
		}
		return r.Outcome, r.Sent
	}
}

// flashSale runs the load against the sale and returns its report, the
// orders the buyers were answered, the requests left on a 5xx and the
// demand in units.
func (b *bench) flashSale(ctx context.Context, saleID string, rate float64) (LoadReport, []ClientOrder, int64, int64) {
	o := b.opts
	buyers := b.tokens.Fresh(o.Limit, o.Quantity)
	client := b.buyClient(o.URL, saleID)
	defer client.Close()
	lr := LoadReport{SaleID: saleID, Stock: o.Stock, Limit: o.Limit, Quantity: o.Quantity, Buyers: o.Buyers, Rate: rate}
	rec := NewRecorder(time.Now(), 4*runtime.GOMAXPROCS(0))
	t := &tally{start: rec.start}
	sched := Schedule{Rate: rate, Ramp: o.Ramp, Duration: o.Duration}
	x0 := b.dbXacts(ctx)
	sampler := StartSampler(b.watched(), time.Second)
	lr.Run = b.drive(ctx, sched, rec, b.buyOp(client, buyers, t))
	lr.Processes = sampler.Stop(runtime.NumCPU())
	lr.Xacts = -1
	if x1 := b.dbXacts(ctx); x0 >= 0 && x1 >= x0 {
		lr.Xacts = x1 - x0
	}
	if o.Model != "open" {
		lr.Rate = 0
	}
	m := rec.Merge()
	lr.fill(m, client.stats, t)
	lr.Latency, lr.Service = latencies(m), statsOf(m.Service)
	lr.Series = series(m, sched, o.Model == "open")
	lr.DemandUnits = buyers.DemandUnits()
	return lr, t.orders, unresolved(m), lr.DemandUnits
}

// drive runs op in the model the options ask for.
func (b *bench) drive(ctx context.Context, sched Schedule, rec *Recorder, op Op) RunStats {
	o := b.opts
	if o.Model == "open" {
		return RunOpen(ctx, sched, o.Workers, o.Grace, rec, op)
	}
	return RunClosed(ctx, o.VUs, o.Ramp+o.Duration, o.Think, rec, op)
}

// fill sets the load's counts and rates from the merged recording, the
// client's attempts and the buyers' tally.
func (lr *LoadReport) fill(m Merged, cs *AttemptStats, t *tally) {
	st := lr.Run
	lr.Seconds = st.End.Sub(st.Start).Seconds()
	lr.Requests = m.All.TotalCount()
	if lr.Seconds > 0 {
		lr.RequestsPerSec = float64(lr.Requests) / lr.Seconds
	}
	lr.Attempts, lr.Retries, lr.Recovered, lr.Replayed = cs.Attempts.Load(), cs.Retries.Load(), cs.Recovered.Load(), cs.Replayed.Load()
	lr.Timeouts, lr.ConnErrors = cs.Timeouts.Load(), cs.ConnErrs.Load()
	lr.Status = map[string]int64{}
	for code := range cs.Status {
		if n := cs.Status[code].Load(); n > 0 {
			lr.Status[strconv.Itoa(code)] = n
		}
	}
	lr.Orders = m.Count(OutCreated)
	lr.SelloutClient = time.Duration(t.firstSoldOut.Load()).Seconds()
	lr.SelloutLast201 = time.Duration(t.last201.Load()).Seconds()
	if sellout := lr.SelloutLast201; sellout > 0 {
		lr.OrdersPerSec = float64(lr.Orders) / sellout
	}
}

// latencies are the latency statistics by outcome, over all answers, and
// over the errors that are none of the expected answers.
func latencies(m Merged) map[string]LatencyStats {
	lat := map[string]LatencyStats{"all": statsOf(m.All)}
	others := newHist(3)
	for o := range numOutcomes {
		lat[Outcome(o).String()] = statsOf(m.ByOutcome[o])
		if Outcome(o) != OutCreated && Outcome(o) != OutSoldOut && Outcome(o) != OutRateLimited && Outcome(o) != OutOK {
			others.Merge(m.ByOutcome[o])
		}
	}
	lat["other_errors"] = statsOf(others)
	return lat
}

// series is the load second by second; open tells whether each second
// has an intended rate.
func series(m Merged, sched Schedule, open bool) []SeriesPoint {
	var out []SeriesPoint
	for sec, s := range m.Series {
		p := SeriesPoint{T: sec, Counts: map[string]int64{}}
		if open {
			p.Intended = sched.RateAt(time.Duration(sec)*time.Second + time.Second/2)
		}
		for o, n := range s.Counts {
			if n > 0 {
				p.Counts[Outcome(o).String()] = n
				p.Done += n
			}
		}
		if s.Lat.TotalCount() > 0 {
			p.P50 = float64(s.Lat.ValueAtQuantile(50)) / 1000
			p.P99 = float64(s.Lat.ValueAtQuantile(99)) / 1000
			p.Max = float64(s.Lat.Max()) / 1000
		}
		out = append(out, p)
	}
	return out
}

// unresolved counts the requests left on a 5xx: whether they made an
// order only the collection can tell.
func unresolved(m Merged) int64 {
	var n int64
	for o := range numOutcomes {
		if Outcome(o).unresolved5xx() {
			n += m.Count(Outcome(o))
		}
	}
	return n
}

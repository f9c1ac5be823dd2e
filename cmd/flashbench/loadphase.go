package main

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// flashSale runs the load against the sale and returns its report, the
// orders the buyers were answered, the requests left on a 5xx and the
// demand in units.
func (b *bench) flashSale(ctx context.Context, saleID string, rate float64) (LoadReport, []ClientOrder, int64, int64) {
	o := b.opts
	buyers := b.tokens.Fresh(o.Limit, o.Quantity)
	client := b.buyClient(o.URL, saleID)
	defer client.Close()
	lr := LoadReport{SaleID: saleID, Stock: o.Stock, Limit: o.Limit, Quantity: o.Quantity, Buyers: o.Buyers, Rate: rate}

	var mu sync.Mutex
	var orders []ClientOrder
	var firstSoldOut, last201 atomic.Int64
	rec := NewRecorder(time.Now(), 4*runtime.GOMAXPROCS(0))
	start := rec.start
	op := func(ctx context.Context, seq int64) (Outcome, time.Time) {
		i := buyers.Next()
		r := client.Buy(ctx, buyers.auth[i], "fb-"+b.runID+"-"+strconv.FormatInt(seq, 36))
		done := int64(time.Since(start))
		switch r.Outcome {
		case OutCreated:
			buyers.units[i].Add(buyers.qty)
			id, _ := strconv.ParseInt(r.OrderID, 10, 64)
			mu.Lock()
			orders = append(orders, ClientOrder{Buyer: buyers.ids[i], OrderID: id})
			mu.Unlock()
			for cur := last201.Load(); done > cur && !last201.CompareAndSwap(cur, done); cur = last201.Load() {
			}
		case OutSoldOut:
			for cur := firstSoldOut.Load(); (cur == 0 || done < cur) && !firstSoldOut.CompareAndSwap(cur, done); cur = firstSoldOut.Load() {
			}
		}
		return r.Outcome, r.Sent
	}
	x0 := b.dbXacts(ctx)
	sampler := StartSampler(b.watched(), time.Second)
	var st RunStats
	sched := Schedule{Rate: rate, Ramp: o.Ramp, Duration: o.Duration}
	if o.Model == "open" {
		st = RunOpen(ctx, sched, o.Workers, o.Grace, rec, op)
	} else {
		st = RunClosed(ctx, o.VUs, o.Ramp+o.Duration, o.Think, rec, op)
		lr.Rate = 0
	}
	lr.Processes = sampler.Stop(runtime.NumCPU())
	lr.Run = st
	lr.Xacts = -1
	if x1 := b.dbXacts(ctx); x0 >= 0 && x1 >= x0 {
		lr.Xacts = x1 - x0
	}
	m := rec.Merge()

	lr.Seconds = st.End.Sub(st.Start).Seconds()
	lr.Requests = m.All.TotalCount()
	if lr.Seconds > 0 {
		lr.RequestsPerSec = float64(lr.Requests) / lr.Seconds
	}
	cs := client.stats
	lr.Attempts, lr.Retries, lr.Recovered, lr.Replayed = cs.Attempts.Load(), cs.Retries.Load(), cs.Recovered.Load(), cs.Replayed.Load()
	lr.Timeouts, lr.ConnErrors = cs.Timeouts.Load(), cs.ConnErrs.Load()
	lr.Status = map[string]int64{}
	for code := range cs.Status {
		if n := cs.Status[code].Load(); n > 0 {
			lr.Status[strconv.Itoa(code)] = n
		}
	}
	lr.Orders = m.Count(OutCreated)
	lr.SelloutClient = time.Duration(firstSoldOut.Load()).Seconds()
	lr.SelloutLast201 = time.Duration(last201.Load()).Seconds()
	if sellout := lr.SelloutLast201; sellout > 0 {
		lr.OrdersPerSec = float64(lr.Orders) / sellout
	}
	lr.Latency = map[string]LatencyStats{"all": statsOf(m.All)}
	others := newHist(3)
	for o := range numOutcomes {
		lr.Latency[Outcome(o).String()] = statsOf(m.ByOutcome[o])
		if Outcome(o) != OutCreated && Outcome(o) != OutSoldOut && Outcome(o) != OutRateLimited && Outcome(o) != OutOK {
			others.Merge(m.ByOutcome[o])
		}
	}
	lr.Latency["other_errors"] = statsOf(others)
	lr.Service = statsOf(m.Service)
	for sec, s := range m.Series {
		p := SeriesPoint{T: sec, Counts: map[string]int64{}}
		if o.Model == "open" {
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
		lr.Series = append(lr.Series, p)
	}
	var unresolved int64
	for o := range numOutcomes {
		if Outcome(o).unresolved5xx() {
			unresolved += m.Count(Outcome(o))
		}
	}
	lr.DemandUnits = buyers.DemandUnits()
	return lr, orders, unresolved, lr.DemandUnits
}

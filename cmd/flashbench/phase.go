package main

import (
	"context"
	"runtime"
	"strconv"
	"time"
)

// Phase is one closed-model measurement: a ceiling or a probe of the
// service.
type Phase struct {
	Name        string           `json:"name"`
	What        string           `json:"what"`
	Concurrency int              `json:"concurrency"`
	Rate        float64          `json:"rate,omitempty"` // open model: the arrival rate
	Seconds     float64          `json:"seconds"`
	Ops         int64            `json:"ops"`
	OKOps       int64            `json:"ok_ops"` // the outcome the phase is about
	PerSecond   float64          `json:"per_second"`
	Latency     LatencyStats     `json:"latency"`
	Outcomes    map[string]int64 `json:"outcomes"`
	Processes   []ProcUsage      `json:"processes,omitempty"`
	XactsPerOp  float64          `json:"pg_xacts_per_op,omitempty"` // transactions on the service's databases per operation
	Error       string           `json:"error,omitempty"`
}

// runPhase measures op with vus workers for dur; okOut is the outcome
// counted as the phase's throughput.
func runPhase(ctx context.Context, name, what string, vus int, dur time.Duration, okOut Outcome, watch []Watched, op Op) Phase {
	sampler := StartSampler(watch, time.Second)
	rec := NewRecorder(time.Now(), 2*runtime.GOMAXPROCS(0))
	st := RunClosed(ctx, vus, dur, 0, rec, op)
	procs := sampler.Stop(runtime.NumCPU())
	m := rec.Merge()
	secs := st.End.Sub(st.Start).Seconds()
	p := Phase{Name: name, What: what, Concurrency: vus, Seconds: secs, Ops: m.All.TotalCount(), OKOps: m.Count(okOut),
		Latency: statsOf(m.ByOutcome[okOut]), Outcomes: map[string]int64{}, Processes: procs}
	for o := range numOutcomes {
		if n := m.Count(Outcome(o)); n > 0 {
			p.Outcomes[Outcome(o).String()] = n
		}
	}
	if secs > 0 {
		p.PerSecond = float64(p.OKOps) / secs
	}
	return p
}

// runOpenPhase measures op in the open model at rate for dur; latency
// counts from each arrival's intended time.
func runOpenPhase(ctx context.Context, name, what string, rate float64, workers int, dur time.Duration, okOut Outcome, watch []Watched, op Op) Phase {
	sampler := StartSampler(watch, time.Second)
	rec := NewRecorder(time.Now(), 2*runtime.GOMAXPROCS(0))
	st := RunOpen(ctx, Schedule{Rate: rate, Duration: dur}, workers, 10*time.Second, rec, op)
	procs := sampler.Stop(runtime.NumCPU())
	m := rec.Merge()
	secs := st.End.Sub(st.Start).Seconds()
	p := Phase{Name: name, What: what, Concurrency: workers, Seconds: secs, Ops: m.All.TotalCount(), OKOps: m.Count(okOut),
		Latency: statsOf(m.All), Outcomes: map[string]int64{}, Processes: procs, Rate: rate}
	for o := range numOutcomes {
		if n := m.Count(Outcome(o)); n > 0 {
			p.Outcomes[Outcome(o).String()] = n
		}
	}
	if secs > 0 {
		p.PerSecond = float64(p.OKOps) / secs
	}
	return p
}

// httpOp is the buy request of the generator against any URL: the same
// client, headers and body the load sends.
func httpOp(c *Client, buyers *Buyers, runID string) Op {
	return func(ctx context.Context, seq int64) (Outcome, time.Time) {
		b := buyers.Next()
		r := c.Buy(ctx, buyers.auth[b], runID+"-c"+strconv.FormatInt(seq, 36))
		if r.Outcome == OutCreated {
			buyers.units[b].Add(buyers.qty)
		}
		return r.Outcome, r.Sent
	}
}

package main

import (
	"fmt"
	"math"
	"strings"
)

// Names of the phases the targets read; each figure is measured once and
// every target that needs it reads it from the report.
const (
	phaseBare      = "bare"
	phaseBareOpen  = "bare open"
	phaseLua       = "lua"
	phaseInsert    = "insert"
	phaseSoldOut   = "service sold-out"
	phaseOrders    = "service orders"
	phaseOrdersOff = "service orders (relay and consumers off)"
)

// The processes whose CPU makes up a durable order (issue 12), by the
// names scripts/bench.sh gives them.
var orderProcs = []struct{ label, name string }{
	{"serve", "flashsale serve"},
	{"PostgreSQL", "postgres (cluster)"},
	{"Redis", "redis1"},
	{"Kafka", "kafka"},
}

func phaseByName(ps []Phase, name string) *Phase {
	for i := range ps {
		if ps[i].Name == name && ps[i].Error == "" && ps[i].PerSecond > 0 {
			return &ps[i]
		}
	}
	return nil
}

// ratiosAndTargets relates the service's rates to the ceilings of the
// same run and judges issue 12's targets.
func (b *bench) ratiosAndTargets(rep *Report) {
	rep.Ratios = append(rep.Ratios, ratios(rep)...)
	rep.Targets = targets(rep)
}

// targets judges every target of issue 12 from the report's figures.
func targets(rep *Report) []Target {
	if rep.Soak != nil {
		return []Target{soakTarget(rep.Soak)}
	}
	return []Target{cpuTarget(rep), throughputTarget(rep), selloutTarget(rep), saleLatencyTarget(rep, "all", 3),
		saleLatencyTarget(rep, "sold_out", 2), relayTarget(rep), consumerTarget(rep), asyncCostTarget(rep),
		soldOutTarget(rep), memoryTarget(rep.Load)}
}

// ratios are the service's rates over the ceilings they are bound by.
func ratios(rep *Report) []Ratio {
	bare, lua, ins := phaseByName(rep.Ceilings, phaseBare), phaseByName(rep.Ceilings, phaseLua), phaseByName(rep.Ceilings, phaseInsert)
	so, ord := phaseByName(rep.Probes, phaseSoldOut), phaseByName(rep.Probes, phaseOrders)
	var out []Ratio
	ratio := func(name string, s float64, c *Phase) {
		if c != nil && s > 0 {
			out = append(out, Ratio{Name: name, Service: s, Ceiling: c.PerSecond, Ratio: s / c.PerSecond})
		}
	}
	if so != nil {
		ratio("sold-out answers/s (peak) ÷ bare handler req/s", so.PerSecond, bare)
	}
	if ord != nil {
		ratio("durable orders/s (peak) ÷ Lua reservations/s", ord.PerSecond, lua)
		ratio("durable orders/s (peak) ÷ order+outbox inserts/s", ord.PerSecond, ins)
		ratio("durable orders/s (peak) ÷ bare handler req/s", ord.PerSecond, bare)
		if h := harmonic(rep); h > 0 {
			out = append(out, Ratio{Name: "durable orders/s (peak) ÷ H = 1/(1/Lua + 1/insert)", Service: ord.PerSecond, Ceiling: h, Ratio: ord.PerSecond / h})
		}
	}
	l := rep.Load
	ratio("flash sale requests/s ÷ bare handler req/s", l.RequestsPerSec, bare)
	ratio("flash sale orders/s (until sell-out) ÷ order+outbox inserts/s", l.OrdersPerSec, ins)
	return out
}

// harmonic is H = 1/(1/L + 1/I), the pipeline's ceiling when the Lua
// reservation and the order+outbox insert share the cores; 0 without both.
func harmonic(rep *Report) float64 {
	lua, ins := phaseByName(rep.Ceilings, phaseLua), phaseByName(rep.Ceilings, phaseInsert)
	if lua == nil || ins == nil {
		return 0
	}
	return 1 / (1/lua.PerSecond + 1/ins.PerSecond)
}

// judge fills a target's value, bound and verdict: value ≤ bound, or ≥
// with atLeast.
func (t Target) judge(value, bound float64, atLeast bool, measured string) Target {
	t.Value, t.Bound, t.Measured, t.AtLeast = &value, bound, measured, atLeast
	met := value <= bound
	if atLeast {
		met = value >= bound
	}
	t.Met = &met
	return t
}

// perOp is a process's CPU in µs per operation of phase ph; false when the
// process was not watched or could not be read.
func perOp(ph *Phase, name string) (float64, bool) {
	for _, u := range ph.Processes {
		if u.Name == name && u.CPUSeconds > 0 && ph.PerSecond > 0 {
			return 1e6 * u.Cores / ph.PerSecond, true
		}
	}
	return 0, false
}

// cpuTarget: the CPU a durable order costs across the four processes, in
// the closed order peak with relay and consumers on, against the bare
// handler's CPU per request.
func cpuTarget(rep *Report) Target {
	t := Target{Name: "CPU per durable order", Target: "serve + PostgreSQL + Redis + Kafka µs per order ≤ 6 × the bare handler's µs per request", Unit: "× bare"}
	ord, bare := phaseByName(rep.Probes, phaseOrders), phaseByName(rep.Ceilings, phaseBare)
	if ord == nil || bare == nil {
		t.Measured = "needs --ceilings"
		return t
	}
	bareUS, ok := perOp(bare, "bare-server")
	if !ok {
		t.Measured = "the bare handler's CPU was not read"
		return t
	}
	total, split, missing := orderCPU(ord)
	if len(missing) > 0 {
		t.Measured = fmt.Sprintf("%.0f µs per order without %s (pass their pids: scripts/bench.sh does)", total, strings.Join(missing, ", "))
		return t
	}
	text := fmt.Sprintf("%.0f µs = %.1f × %.1f µs (%s)", total, total/bareUS, bareUS, split)
	if own, ok := perOp(ord, "postgres (service dbs)"); ok {
		// The cluster counts the stack's other users too; its WAL writer
		// and checkpointer are the service's cost as well.
		text += fmt.Sprintf("; PostgreSQL's backends of the service's databases alone: %.0f µs", own)
	}
	if p := rep.Profile; p != nil && p.Error == "" && len(p.Stages) > 0 {
		text += "; serve by stage: " + stageText(p.Stages)
	}
	return t.judge(total/bareUS, 6, false, text)
}

// orderCPU sums the order processes' µs per order of the phase.
func orderCPU(ph *Phase) (total float64, split string, missing []string) {
	var parts []string
	for _, p := range orderProcs {
		us, ok := perOp(ph, p.name)
		if !ok {
			missing = append(missing, p.label)
			continue
		}
		total += us
		parts = append(parts, fmt.Sprintf("%s %.0f", p.label, us))
	}
	return total, strings.Join(parts, " + "), missing
}

func stageText(stages []StageShare) string {
	parts := make([]string, 0, len(stages))
	for _, s := range stages {
		parts = append(parts, fmt.Sprintf("%s %.0f %% (%.0f µs)", s.Stage, 100*s.Share, s.PerOp))
	}
	return strings.Join(parts, ", ")
}

// throughputTarget: durable orders per second at the closed peak against
// the pipeline's harmonic ceiling.
func throughputTarget(rep *Report) Target {
	t := Target{Name: "durable orders/s", Target: "closed peak ≥ 0.9 × H, H = 1/(1/Lua + 1/insert)", Unit: "× H"}
	ord, h := phaseByName(rep.Probes, phaseOrders), harmonic(rep)
	if ord == nil || h <= 0 {
		t.Measured = "needs --ceilings"
		return t
	}
	lua, ins := phaseByName(rep.Ceilings, phaseLua), phaseByName(rep.Ceilings, phaseInsert)
	return t.judge(ord.PerSecond/h, 0.9, true, fmt.Sprintf("%.0f/s = %.2f × H = %.0f/s (Lua %.0f/s, insert %.0f/s)",
		ord.PerSecond, ord.PerSecond/h, h, lua.PerSecond, ins.PerSecond))
}

// selloutTarget: from the first request to the last 201 of the flash
// sale, against the time the pipeline's ceiling needs for its stock.
func selloutTarget(rep *Report) Target {
	t := Target{Name: "time to sell out", Target: "first request → last 201 ≤ 1.3 × stock / H (open model)", Unit: "× stock/H"}
	l, h := rep.Load, harmonic(rep)
	switch {
	case h <= 0:
		t.Measured = "needs --ceilings"
		return t
	case l.Run.Model != "open" || l.Stock <= 0 || l.Remaining > 0 || l.SelloutLast201 <= 0:
		t.Measured = fmt.Sprintf("not judged: the sale (open model) did not sell out (%d of %d units left)", l.Remaining, l.Stock)
		return t
	}
	ideal := float64(l.Stock) / h
	return t.judge(l.SelloutLast201/ideal, 1.3, false, fmt.Sprintf("%.2f s = %.2f × %d / %.0f/s = %.2f s (last commit at %.2f s)",
		l.SelloutLast201, l.SelloutLast201/ideal, l.Stock, h, ideal, l.SelloutDB))
}

// saleLatencyTarget: the flash sale's CO-corrected p99 over the answers of
// outcome (all, or sold_out: the losers) against the bare handler's p99 in
// the open model at 0.8 × its own peak.
func saleLatencyTarget(rep *Report, outcome string, factor float64) Target {
	who := map[string]string{"all": "all answers", "sold_out": "losers (sold-out answers)"}[outcome]
	t := Target{Name: "sale latency p99, " + who, Unit: "× bare open p99",
		Target: fmt.Sprintf("CO-corrected p99 ≤ %.0f × the bare handler's open-model p99", factor)}
	s, bare := rep.Load.Latency[outcome], phaseByName(rep.Ceilings, phaseBareOpen)
	if bare == nil || bare.Latency.P99 <= 0 {
		t.Measured = "needs --ceilings"
		return t
	}
	if s.Count == 0 {
		t.Measured = "no " + who
		return t
	}
	return t.judge(s.P99/bare.Latency.P99, factor, false, fmt.Sprintf("%.2f ms = %.1f × %.2f ms (the bare handler at %.0f/s); %d answers",
		s.P99, s.P99/bare.Latency.P99, bare.Latency.P99, bare.Rate, s.Count))
}

// relayTarget: commit → Kafka against the group commit's own p99 during
// the flash sale.
func relayTarget(rep *Report) Target {
	t := Target{Name: "relay lag p99", Target: "commit → Kafka p99 ≤ 2 × the group commit's p99 during the sale", Unit: "× commit p99"}
	r, c := rep.Lag.Relay, rep.Lag.Commit
	switch {
	case r.Count == 0:
		t.Measured = "no events"
		return t
	case c.Count == 0 || c.P99 <= 0:
		t.Measured = fmt.Sprintf("relay p99 %.1f ms; the group commit's p99 was not read (--debug-url)", r.P99)
		return t
	}
	return t.judge(r.P99/c.P99, 2, false, fmt.Sprintf("%.1f ms = %.1f × %.1f ms (flashsale_store_seconds op create over %d commits; relay over %d events)",
		r.P99, r.P99/c.P99, c.P99, c.Count, r.Count))
}

// consumerTarget: commit → ledger entry.
func consumerTarget(rep *Report) Target {
	t := Target{Name: "consumer lag p99", Target: "commit → ledger entry p99 ≤ 1 s", Unit: "s"}
	c := rep.Lag.Consumer
	if c.Count == 0 {
		t.Measured = "not measured: " + rep.Lag.ConsumerNote
		return t
	}
	return t.judge(c.P99/1000, 1, false, fmt.Sprintf("p99 %.0f ms (p50 %.0f, max %.0f) over %d orders", c.P99, c.P50, c.Max, c.Count))
}

// asyncCostTarget: the throughput the relay and the consumers take, from
// the order peak with them on and a second service with both off.
func asyncCostTarget(rep *Report) Target {
	t := Target{Name: "relay + consumers cost", Target: "durable orders/s with relay and consumers on ≥ 0.9 × with both off", Unit: "fraction lost"}
	on, off := phaseByName(rep.Probes, phaseOrders), phaseByName(rep.Probes, phaseOrdersOff)
	if on == nil || off == nil {
		t.Measured = "needs --ceilings and --off-url (a second serve with relay and consumers off; scripts/bench.sh starts one)"
		return t
	}
	cost := 1 - on.PerSecond/off.PerSecond
	text := fmt.Sprintf("%.0f/s on vs %.0f/s off: %.0f %% lost", on.PerSecond, off.PerSecond, 100*cost)
	if onUS, _, m1 := orderCPU(on); len(m1) == 0 {
		if offUS, _, m2 := orderCPU(off); len(m2) == 0 {
			text += fmt.Sprintf("; CPU per order %.0f µs on vs %.0f µs off", onUS, offUS)
		}
	}
	return t.judge(cost, 0.10, false, text)
}

// soldOutTarget: the sold-out answers come close to the bare handler.
func soldOutTarget(rep *Report) Target {
	t := Target{Name: "sold-out answers", Target: "≥ 0.9 × bare handler req/s", Unit: "× bare"}
	so, bare := phaseByName(rep.Probes, phaseSoldOut), phaseByName(rep.Ceilings, phaseBare)
	if so == nil || bare == nil {
		t.Measured = "needs --ceilings"
		return t
	}
	r := so.PerSecond / bare.PerSecond
	return t.judge(r, 0.9, true, fmt.Sprintf("%.0f/s = %.2f × %.0f/s", so.PerSecond, r, bare.PerSecond))
}

// memoryTarget: the service's RSS does not grow with the flash sale's
// load (judged from 60 s of load; the soak judges it over 10 minutes).
func memoryTarget(l LoadReport) Target {
	t := Target{Name: "service memory flat under load", Target: "RSS does not grow with the load: peak of the last third ≤ 1.1 × that of the middle third + 8 MB, over ≥ 60 s"}
	for _, u := range l.Processes {
		if u.Name == "flashsale serve" && u.Error == "" {
			t.Met, t.Measured = memoryFlat(u.Series)
			t.Measured = fmt.Sprintf("RSS %.0f → %.0f MB, peak %.0f MB over %.0f s; %s", u.RSSStartMB, u.RSSEndMB, u.RSSPeakMB, l.Seconds, t.Measured)
		}
	}
	if t.Measured == "" {
		t.Measured = "needs --service-pid"
	}
	return t
}

// minFlatSeconds is the shortest load on which memoryFlat judges: a
// shorter one is mostly the warm-up of pools and caches.
const minFlatSeconds = 60

// memoryFlat judges whether the service's RSS stopped growing: the first
// third of the load is warm-up (connection pools, the token cache, buffers
// reach their size), so the peak of the last third is compared with the
// peak of the middle third, with room for the garbage collector's
// sawtooth. A leak shows as a last third above the middle one.
func memoryFlat(series []ProcPoint) (*bool, string) {
	if len(series) == 0 || series[len(series)-1].T < minFlatSeconds {
		return nil, fmt.Sprintf("not judged: needs ≥ %d s of load (--duration)", minFlatSeconds)
	}
	end := series[len(series)-1].T
	var middle, last float64
	for _, p := range series {
		switch {
		case p.T > 2*end/3:
			last = max(last, p.RSSMB)
		case p.T > end/3:
			middle = max(middle, p.RSSMB)
		}
	}
	met := last <= 1.1*middle+8
	return &met, fmt.Sprintf("peak %.0f MB in the middle third, %.0f MB in the last (%+.0f %%)",
		middle, last, 100*(last-middle)/middle)
}

// rssBand judges the soak: every RSS sample after the warm-up within
// ±10 % of the first one after it. It returns the largest deviation (a
// fraction) and whether there were samples to judge.
func rssBand(series []ProcPoint, warmup float64) (dev, ref, lo, hi float64, n int) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, p := range series {
		if p.T < warmup {
			continue
		}
		if n == 0 {
			ref = p.RSSMB
		}
		n++
		lo, hi = min(lo, p.RSSMB), max(hi, p.RSSMB)
	}
	if n == 0 || ref <= 0 {
		return 0, 0, 0, 0, 0
	}
	return max(hi/ref-1, 1-lo/ref), ref, lo, hi, n
}

// soakTarget: serve's RSS over the soak, after its first minute.
func soakTarget(s *SoakReport) Target {
	t := Target{Name: "memory flat (soak)", Unit: "max deviation",
		Target: fmt.Sprintf("serve's RSS within ±10 %% of its value at %.0f s, for the rest of the soak at 0.8 × peak", s.WarmupSeconds)}
	if s.RSS == nil || s.RSS.Error != "" {
		t.Measured = "needs --service-pid"
		return t
	}
	dev, ref, lo, hi, n := rssBand(s.RSS.Series, s.WarmupSeconds)
	if n < 2 {
		t.Measured = fmt.Sprintf("not judged: %d samples after the warm-up of %.0f s", n, s.WarmupSeconds)
		return t
	}
	text := fmt.Sprintf("RSS %.0f MB at %.0f s, then %.0f–%.0f MB (±%.1f %%) over %d samples; %.0f s at %.0f orders/s",
		ref, s.WarmupSeconds, lo, hi, 100*dev, n, s.Phase.Seconds, s.Phase.PerSecond)
	if ns := s.Phase.Outcomes[OutNotSent.String()]; ns > 0 {
		// Arrivals queued in the generator and requests in flight grow
		// the service's memory too: this RSS is not a steady state's.
		text += fmt.Sprintf("; the service fell behind the rate (%d arrivals not sent), so the RSS includes its backlog", ns)
	}
	return t.judge(dev, 0.10, false, text)
}

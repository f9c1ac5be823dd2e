package main

import (
	"math"
	"strings"
	"testing"
)

// proc is a watched process that used cores over a phase.
func proc(name string, cores float64) ProcUsage {
	return ProcUsage{Name: name, CPUSeconds: 4 * cores, Cores: cores}
}

// runFigures is one run's figures, in memory: the bare handler at
// 20,000/s for 40 µs a request (p99 10 ms open), Lua 18,000/s, insert
// 12,000/s (H = 7,200/s), sold-out 19,000/s, the order peak 4,000/s for
// serve 250 + PostgreSQL 200 + Redis 50 + Kafka 50 µs, 5,000/s with relay
// and consumers off, and a sale of 10,000 units sold in 1.8 s.
func runFigures() *Report {
	return &Report{
		Ceilings: []Phase{
			{Name: phaseBare, PerSecond: 20000, Processes: []ProcUsage{proc("flashbench (generator)", 0.2), proc("bare-server", 0.8)}},
			{Name: phaseBareOpen, PerSecond: 16000, Rate: 16000, Latency: LatencyStats{P99: 10}},
			{Name: phaseLua, PerSecond: 18000},
			{Name: phaseInsert, PerSecond: 12000},
		},
		Probes: []Phase{
			{Name: phaseSoldOut, PerSecond: 19000},
			{Name: phaseOrdersOff, PerSecond: 5000, Processes: []ProcUsage{proc("flashsale serve", 0.7),
				proc("postgres (cluster)", 0.8), proc("redis1", 0.25), proc("kafka", 0.05)}},
			{Name: phaseOrders, PerSecond: 4000, Processes: []ProcUsage{proc("flashsale serve", 1.0),
				proc("postgres (cluster)", 0.8), proc("postgres (service dbs)", 0.6), proc("redis1", 0.2), proc("kafka", 0.2)}},
		},
		Load: LoadReport{Stock: 10000, Remaining: 0, Run: RunStats{Model: "open"}, SelloutLast201: 1.8, SelloutDB: 1.79,
			Latency: map[string]LatencyStats{"all": {Count: 100, P99: 28}, "sold_out": {Count: 90, P99: 15}}},
		Lag: LagReport{Relay: LatencyStats{Count: 10000, P99: 30}, Commit: LatencyStats{Count: 300, P99: 20},
			Consumer: LatencyStats{Count: 10000, P99: 1500}},
		Profile: &StageProfile{Stages: []StageShare{{Stage: "relay", Share: 0.3, PerOp: 75}}},
	}
}

func targetNamed(t *testing.T, ts []Target, prefix string) Target {
	t.Helper()
	for _, tg := range ts {
		if strings.HasPrefix(tg.Name, prefix) {
			return tg
		}
	}
	t.Fatalf("no target %q among %d", prefix, len(ts))
	return Target{}
}

// TestTargetsJudgeIssue12FromOneRunsFigures checks every target's value,
// bound and verdict against figures worked out by hand.
func TestTargetsJudgeIssue12FromOneRunsFigures(t *testing.T) {
	ts := targets(runFigures())
	want := []struct {
		name         string
		value, bound float64
		met          bool
	}{
		{"CPU per durable order", 550.0 / 40, 6, false},         // (250+200+50+50) µs over 0.8 cores / 20,000/s
		{"durable orders/s", 4000.0 / 7200, 0.9, false},         // H = 1/(1/18000 + 1/12000)
		{"time to sell out", 1.8 / (10000.0 / 7200), 1.3, true}, // 1.296
		{"sale latency p99, all", 2.8, 3, true},
		{"sale latency p99, losers", 1.5, 2, true},
		{"relay lag p99", 1.5, 2, true},
		{"consumer lag p99", 1.5, 1, false},
		{"relay + consumers cost", 0.2, 0.1, false},
		{"sold-out answers", 0.95, 0.9, true},
	}
	for _, w := range want {
		tg := targetNamed(t, ts, w.name)
		if tg.Value == nil || tg.Met == nil {
			t.Errorf("%s not judged: %s", w.name, tg.Measured)
			continue
		}
		if math.Abs(*tg.Value-w.value) > 1e-9 || tg.Bound != w.bound || *tg.Met != w.met {
			t.Errorf("%s: value %v bound %v met %v, want %v %v %v (%s)", w.name, *tg.Value, tg.Bound, *tg.Met, w.value, w.bound, w.met, tg.Measured)
		}
	}
	cpu := targetNamed(t, ts, "CPU per durable order").Measured
	for _, part := range []string{"serve 250", "PostgreSQL 200", "Redis 50", "Kafka 50", "serve by stage: relay 30 % (75 µs)"} {
		if !strings.Contains(cpu, part) {
			t.Errorf("the CPU target does not show %q: %s", part, cpu)
		}
	}
	if cost := targetNamed(t, ts, "relay + consumers cost").Measured; !strings.Contains(cost, "550 µs on vs 360 µs off") {
		t.Errorf("the cost target does not show CPU per order on and off: %s", cost)
	}
}

// TestTargetsAreNotJudgedWithoutTheirFigures: a figure the run did not
// measure leaves its target unjudged instead of met or failed.
func TestTargetsAreNotJudgedWithoutTheirFigures(t *testing.T) {
	r := runFigures()
	r.Probes = r.Probes[:1] // no order peaks
	r.Lag.Commit = LatencyStats{}
	r.Load.Remaining = 3
	r.Ceilings[0].Processes = nil
	ts := targets(r)
	for _, name := range []string{"CPU per durable order", "durable orders/s", "time to sell out", "relay lag p99", "relay + consumers cost"} {
		if tg := targetNamed(t, ts, name); tg.Met != nil || tg.Value != nil {
			t.Errorf("%s judged without its figures: %s", name, tg.Measured)
		}
	}
	r = runFigures()
	r.Probes[2].Processes = r.Probes[2].Processes[:4] // Kafka not watched
	if tg := targetNamed(t, targets(r), "CPU per durable order"); tg.Met != nil || !strings.Contains(tg.Measured, "without Kafka") {
		t.Errorf("CPU per order judged without Kafka: %s", tg.Measured)
	}
}

func TestHarmonicCeilingAndItsRatio(t *testing.T) {
	r := runFigures()
	if h := harmonic(r); math.Abs(h-7200) > 1e-9 {
		t.Errorf("H = %v, want 7200", h)
	}
	found := false
	for _, x := range ratios(r) {
		if strings.Contains(x.Name, "÷ H") {
			found = math.Abs(x.Ratio-4000.0/7200) < 1e-9
		}
	}
	if !found {
		t.Errorf("no durable orders ÷ H ratio in %+v", ratios(r))
	}
}

// TestSoakJudgesRSSAgainstItsValueAfterTheWarmup: a flat sawtooth is met,
// a slow leak is not, whatever the warm-up did.
func TestSoakJudgesRSSAgainstItsValueAfterTheWarmup(t *testing.T) {
	soak := func(f func(sec float64) float64) *SoakReport {
		u := &ProcUsage{Name: "flashsale serve"}
		for sec := 1.0; sec <= 600; sec++ {
			u.Series = append(u.Series, ProcPoint{T: sec, RSSMB: f(sec)})
		}
		return &SoakReport{WarmupSeconds: 60, RSS: u, Phase: Phase{Seconds: 600, PerSecond: 3000}}
	}
	warm := func(sec float64) float64 { return 40 + min(sec, 60) } // grows to 100 MB in the first minute
	flat := soak(func(sec float64) float64 { return warm(sec) + 5*math.Mod(sec, 7)/7 })
	leak := soak(func(sec float64) float64 { return warm(sec) + max(0, sec-60)/20 }) // +27 MB over 9 minutes
	if tg := soakTarget(flat); tg.Met == nil || !*tg.Met {
		t.Errorf("flat RSS not met: %s", tg.Measured)
	}
	if tg := soakTarget(leak); tg.Met == nil || *tg.Met || *tg.Value < 0.2 {
		t.Errorf("leaking RSS met: %s", tg.Measured)
	}
	short := soak(warm)
	short.RSS.Series = short.RSS.Series[:59]
	if tg := soakTarget(short); tg.Met != nil {
		t.Errorf("a soak shorter than its warm-up judged: %s", tg.Measured)
	}
	if ts := targets(&Report{Soak: flat}); len(ts) != 1 || ts[0].Name != "memory flat (soak)" {
		t.Errorf("a soak's report judges %+v", ts)
	}
}

func TestSoakCheckFailsOnAnyAnswerButCreated(t *testing.T) {
	ok := soakChecks(Phase{Ops: 10, Outcomes: map[string]int64{"created": 10}})
	bad := soakChecks(Phase{Ops: 10, Outcomes: map[string]int64{"created": 9, "server_error": 1}})
	if !Passed(ok) || Passed(bad) {
		t.Errorf("all created: %+v; one 5xx: %+v", ok, bad)
	}
}

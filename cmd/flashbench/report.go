package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Report is everything one run measured and verified; it is written as
// report.json and report.md, with chart.svg beside them.
type Report struct {
	RunID     string            `json:"run_id"`
	StartedAt time.Time         `json:"started_at"`
	Command   string            `json:"command"`
	Machine   map[string]string `json:"machine"`
	Settings  map[string]string `json:"settings"`
	Setup     map[string]string `json:"setup"` // timings of the preparation

	Ceilings []Phase `json:"ceilings,omitempty"` // bare handler, Lua alone, insert alone
	Probes   []Phase `json:"probes,omitempty"`   // the service's peaks, closed model

	Load     LoadReport    `json:"load"`
	Profile  *StageProfile `json:"serve_profile,omitempty"` // serve's CPU by stage in the order peak
	Soak     *SoakReport   `json:"soak,omitempty"`
	Lag      LagReport     `json:"lag"`
	Ratios   []Ratio       `json:"ratios,omitempty"`
	Targets  []Target      `json:"targets"`
	Checks   []Check       `json:"checks"`
	Passed   bool          `json:"passed"`
	Notes    []string      `json:"notes,omitempty"`
	Duration time.Duration `json:"-"`
}

// LoadReport is the flash sale itself.
type LoadReport struct {
	SaleID         string                  `json:"sale_id"`
	Stock          int                     `json:"stock"`
	Limit          int                     `json:"per_user_limit"`
	Quantity       int                     `json:"quantity"`
	Buyers         int                     `json:"buyers"`
	Run            RunStats                `json:"run"`
	Rate           float64                 `json:"rate"` // open model target, per second
	RateSource     string                  `json:"rate_source"`
	Seconds        float64                 `json:"seconds"`
	Requests       int64                   `json:"requests"` // logical requests answered or given up
	RequestsPerSec float64                 `json:"requests_per_s"`
	Attempts       int64                   `json:"attempts"`
	Retries        int64                   `json:"retries"`
	Recovered      int64                   `json:"recovered"` // requests that met a retryable failure then got a final answer
	Replayed       int64                   `json:"replayed_201"`
	Timeouts       int64                   `json:"attempt_timeouts"`
	ConnErrors     int64                   `json:"attempt_conn_errors"`
	Status         map[string]int64        `json:"attempt_status"`
	Orders         int64                   `json:"orders"`        // 201s
	OrdersPerSec   float64                 `json:"orders_per_s"`  // 201s over the time to sell-out
	UnitsSold      int                     `json:"units_sold_db"` // live order units in PostgreSQL
	Remaining      int                     `json:"remaining"`
	DemandUnits    int64                   `json:"demand_units"`
	SelloutClient  float64                 `json:"sellout_first_sold_out_s"` // first request -> first sold-out answer
	SelloutLast201 float64                 `json:"sellout_last_201_s"`       // first request -> last 201 received
	SelloutDB      float64                 `json:"sellout_last_commit_s"`    // first request -> last order's created_at
	Latency        map[string]LatencyStats `json:"latency_ms"`               // by outcome, plus "all" and "other_errors"
	Service        LatencyStats            `json:"service_time_ms"`          // from the actual send: what coordinated omission would show
	Series         []SeriesPoint           `json:"series"`
	Processes      []ProcUsage             `json:"processes"`
	Xacts          int64                   `json:"pg_xacts"` // transactions on the service's databases during the load, -1 unknown
}

// SeriesPoint is one second of the load.
type SeriesPoint struct {
	T        int              `json:"t_s"`
	Intended float64          `json:"intended_per_s"`
	Done     int64            `json:"done"`
	Counts   map[string]int64 `json:"counts"`
	P50      float64          `json:"p50_ms"`
	P99      float64          `json:"p99_ms"`
	Max      float64          `json:"max_ms"`
}

// LagReport is how late the events were.
type LagReport struct {
	Relay        LatencyStats `json:"relay_commit_to_kafka_ms"`
	Commit       LatencyStats `json:"group_commit_ms"` // the service's own histogram (p50, p99, count) during the sale
	CommitNote   string       `json:"group_commit_note,omitempty"`
	RelayNote    string       `json:"relay_note"`
	Consumer     LatencyStats `json:"ledger_commit_to_entry_ms"`
	ConsumerNote string       `json:"consumer_note"`
	GroupLag     *int64       `json:"group_lag_after,omitempty"`
	Duplicates   int          `json:"redelivered_events"`
	Scanned      int64        `json:"kafka_messages_scanned"`
	DrainWaited  float64      `json:"outbox_drain_wait_s"`
}

// Ratio is one of the service's figures over a ceiling of this machine.
type Ratio struct {
	Name    string  `json:"name"`
	Service float64 `json:"service"`
	Ceiling float64 `json:"ceiling"`
	Ratio   float64 `json:"ratio"`
}

// Target is a performance target of the order path beside the figure.
type Target struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      *bool  `json:"met"` // nil: not measured in this run
	// Value is the figure judged against Bound (in Unit), when measured.
	Value *float64 `json:"value,omitempty"`
	Bound float64  `json:"bound,omitempty"`
	Unit  string   `json:"unit,omitempty"`
	// AtLeast says the value must be at least Bound; otherwise at most.
	AtLeast bool `json:"at_least,omitempty"`
}

// WriteFiles writes report.json, report.md and chart.svg to dir.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	r.Markdown(&md)
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "chart.svg"), []byte(Chart(r.Load.Series, r.Load.Rate)), 0o644)
}

func f0(x float64) string { return fmt.Sprintf("%.0f", x) }
func f1(x float64) string { return fmt.Sprintf("%.1f", x) }
func f2(x float64) string { return fmt.Sprintf("%.2f", x) }

// Markdown writes the human report.
func (r *Report) Markdown(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	verdict := "PASSED"
	if !r.Passed {
		verdict = "FAILED"
	}
	p("# flashbench %s — verification %s", r.RunID, verdict)
	p("")
	p("Started %s; `%s`", r.StartedAt.Format(time.RFC3339), r.Command)
	p("")
	p("## Machine")
	p("")
	p("| | |")
	p("|---|---|")
	for _, k := range sortedKeys(r.Machine) {
		p("| %s | %s |", k, r.Machine[k])
	}
	p("")
	p("## Settings")
	p("")
	p("| | |")
	p("|---|---|")
	for _, k := range sortedKeys(r.Settings) {
		p("| %s | %s |", k, r.Settings[k])
	}
	p("")
	if r.Soak == nil {
		r.saleMarkdown(p)
	}
	if len(r.Ceilings)+len(r.Probes) > 0 {
		p("## Ceilings of this machine and the service's peaks (closed model)")
		p("")
		p("| phase | what | concurrency | per second | p50 ms | p99 ms | p99.9 ms | outcomes |")
		p("|---|---|---:|---:|---:|---:|---:|---|")
		for _, ph := range append(append([]Phase{}, r.Ceilings...), r.Probes...) {
			if ph.Error != "" {
				p("| %s | %s | | failed: %s | | | | |", ph.Name, ph.What, ph.Error)
				continue
			}
			conc := strconv.Itoa(ph.Concurrency)
			if ph.Rate > 0 {
				conc = "open, " + f0(ph.Rate) + "/s"
			}
			p("| %s | %s | %s | **%s** | %s | %s | %s | %s |", ph.Name, ph.What, conc, f0(ph.PerSecond),
				f2(ph.Latency.P50), f2(ph.Latency.P99), f2(ph.Latency.P999), joinCounts(ph.Outcomes, " ")+xactNote(ph.XactsPerOp))
		}
		p("")
		p("| ratio | service | ceiling | ratio |")
		p("|---|---:|---:|---:|")
		for _, x := range r.Ratios {
			p("| %s | %s | %s | **%s** |", x.Name, f0(x.Service), f0(x.Ceiling), f2(x.Ratio))
		}
		p("")
		for _, ph := range append(append([]Phase{}, r.Ceilings...), r.Probes...) {
			if len(ph.Processes) > 0 {
				p("Processes during %s (per op: per operation the phase counts):", ph.Name)
				p("")
				procTable(p, ph.Processes, ph.PerSecond)
			}
		}
	}
	r.soakMarkdown(p)
	r.profileMarkdown(p)
	p("## Targets (issue 12)")
	p("")
	p("| target | wanted | value | bound | met | measured |")
	p("|---|---|---:|---:|---|---|")
	for _, t := range r.Targets {
		met, value, bound := "not measured", "", ""
		if t.Met != nil {
			met = map[bool]string{true: "yes", false: "**no**"}[*t.Met]
		}
		if t.Value != nil {
			value, bound = f2(*t.Value)+" "+t.Unit, f2(t.Bound)
		}
		p("| %s | %s | %s | %s | %s | %s |", t.Name, t.Target, value, bound, met, strings.ReplaceAll(t.Measured, "|", "/"))
	}
	p("")
	p("## Verification: %s", verdict)
	p("")
	p("| check | result | detail |")
	p("|---|---|---|")
	for _, c := range r.Checks {
		res := "ok"
		switch {
		case c.Skipped:
			res = "skipped"
		case !c.OK:
			res = "**FAILED**"
		}
		p("| %s | %s | %s |", c.Name, res, strings.ReplaceAll(c.Detail, "|", "/"))
	}
	p("")
	for _, n := range r.Notes {
		p("- %s", n)
	}
}

func xactNote(x float64) string {
	if x <= 0 {
		return ""
	}
	return fmt.Sprintf("; %.2f PostgreSQL transactions per order", x)
}

// procTable shows each process's use; perSec, the operations per second
// of the phase, turns cores into CPU microseconds per operation.
func procTable(p func(string, ...any), ps []ProcUsage, perSec float64) {
	p("| process | pid | CPU s | cores | of machine | CPU µs per op | RSS start → end (peak) MB |")
	p("|---|---:|---:|---:|---:|---:|---|")
	for _, u := range ps {
		if u.Error != "" && u.CPUSeconds == 0 {
			p("| %s | %d | | | | | %s |", u.Name, u.PID, u.Error)
			continue
		}
		perOp := ""
		if perSec > 0 {
			perOp = f1(1e6 * u.Cores / perSec)
		}
		p("| %s | %d | %s | %s | %s %% | %s | %s → %s (%s) |", u.Name, u.PID, f1(u.CPUSeconds), f2(u.Cores), f0(u.MachinePct),
			perOp, f0(u.RSSStartMB), f0(u.RSSEndMB), f0(u.RSSPeakMB))
	}
	p("")
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func latencyOrder(m map[string]LatencyStats) []string {
	var out []string
	for _, k := range append([]string{"all"}, append(outcomeNames[:], "other_errors")...) {
		if s, ok := m[k]; ok && s.Count > 0 {
			out = append(out, k)
		}
	}
	return out
}

// joinCounts lists the counts by key, sorted, each as key+sep+count.
func joinCounts(m map[string]int64, sep string) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	parts := make([]string, 0, len(ks))
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s%s%d", k, sep, m[k]))
	}
	return strings.Join(parts, ", ")
}

// profileMarkdown shows serve's CPU profile by stage.
func (r *Report) profileMarkdown(p func(string, ...any)) {
	pr := r.Profile
	if pr == nil {
		return
	}
	p("## serve's CPU by stage (%s, %d s CPU profile)", pr.Phase, pr.Seconds)
	p("")
	if pr.Error != "" {
		p("Profile failed: %s", pr.Error)
		p("")
		return
	}
	p("%.1f s of CPU sampled. Stages by the profile's stacks: the relay, the consumers and the background loops own all they call; the order path's samples go to the stage of the frame nearest the leaf (JSON, JWT, PostgreSQL client, Redis client, HTTP).", pr.CPU)
	p("")
	p("| stage | share | CPU µs per order |")
	p("|---|---:|---:|")
	for _, s := range pr.Stages {
		p("| %s | %s %% | %s |", s.Stage, f1(100*s.Share), f1(s.PerOp))
	}
	p("")
	if pr.File != "" {
		p("The profile itself: `go tool pprof -top %s` in this directory.", pr.File)
		p("")
	}
}

// soakMarkdown shows the soak: its rate, what it did, serve's RSS.
func (r *Report) soakMarkdown(p func(string, ...any)) {
	s := r.Soak
	if s == nil {
		return
	}
	ph := s.Phase
	p("## Soak")
	p("")
	p("%s orders/s (%s) for %s s in the open model: %d requests (%s), %s orders/s; p50 %s ms, p99 %s ms, max %s ms.",
		f0(s.Rate), s.RateSource, f0(ph.Seconds), ph.Ops, joinCounts(ph.Outcomes, " "), f0(ph.PerSecond), f2(ph.Latency.P50), f2(ph.Latency.P99), f2(ph.Latency.Max))
	p("")
	procTable(p, ph.Processes, ph.PerSecond)
	if s.RSS == nil {
		return
	}
	p("serve's RSS (MB) every second, the warm-up of %s s first:", f0(s.WarmupSeconds))
	p("")
	var b strings.Builder
	for i, pt := range s.RSS.Series {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(f0(pt.RSSMB))
	}
	p("```")
	p("%s", b.String())
	p("```")
	p("")
}

// saleMarkdown shows the flash sale, its events and its processes.
func (r *Report) saleMarkdown(p func(string, ...any)) {
	l := r.Load
	p("## The flash sale")
	p("")
	p("Sale %s: %d units, limit %d per buyer, %d per request, %d distinct buyers; %s model at %s requests/s (%s), %d senders.",
		l.SaleID, l.Stock, l.Limit, l.Quantity, l.Buyers, l.Run.Model, f0(l.Rate), l.RateSource, l.Run.Workers)
	p("")
	p("| figure | value |")
	p("|---|---|")
	p("| requests (logical, after retries) | %d in %s s = **%s req/s** |", l.Requests, f1(l.Seconds), f0(l.RequestsPerSec))
	p("| attempts / retries / recovered by a retry | %d / %d / %d |", l.Attempts, l.Retries, l.Recovered)
	p("| orders (201) | %d (replays %d); **%s orders/s** until sell-out |", l.Orders, l.Replayed, f0(l.OrdersPerSec))
	p("| units sold (PostgreSQL) / remaining (API) / demand | %d / %d / %d |", l.UnitsSold, l.Remaining, l.DemandUnits)
	p("| first request → first sold-out answer | %s s |", f2(l.SelloutClient))
	p("| first request → last 201 / last commit | %s s / %s s |", f2(l.SelloutLast201), f2(l.SelloutDB))
	p("| intended / sent / not sent | %d / %d / %d (worst send lag %s) |", l.Run.Intended, l.Run.Sent, l.Run.NotSent, l.Run.MaxSendLag.Round(time.Microsecond))
	p("| attempt timeouts / connection errors | %d / %d |", l.Timeouts, l.ConnErrors)
	if l.Xacts >= 0 && l.Orders > 0 {
		p("| PostgreSQL transactions on the service's databases | %d (%.1f per order; relay and background loops included) |", l.Xacts, float64(l.Xacts)/float64(l.Orders))
	}
	p("| attempts by status | %s |", joinCounts(l.Status, ": "))
	p("")
	p("Latency from each request's intended send time (coordinated omission corrected), ms:")
	p("")
	p("| outcome | count | p50 | p90 | p99 | p99.9 | max |")
	p("|---|---:|---:|---:|---:|---:|---:|")
	for _, k := range latencyOrder(l.Latency) {
		s := l.Latency[k]
		p("| %s | %d | %s | %s | %s | %s | %s |", k, s.Count, f2(s.P50), f2(s.P90), f2(s.P99), f2(s.P999), f2(s.Max))
	}
	s := l.Service
	p("| *service time (from actual send, uncorrected)* | %d | %s | %s | %s | %s | %s |", s.Count, f2(s.P50), f2(s.P90), f2(s.P99), f2(s.P999), f2(s.Max))
	p("")
	p("![throughput and latency](chart.svg)")
	p("")
	p("## Events")
	p("")
	p("| figure | count | p50 | p90 | p99 | max |")
	p("|---|---:|---:|---:|---:|---:|")
	p("| relay lag: commit → Kafka (ms) | %d | %s | %s | %s | %s |", r.Lag.Relay.Count, f2(r.Lag.Relay.P50), f2(r.Lag.Relay.P90), f2(r.Lag.Relay.P99), f2(r.Lag.Relay.Max))
	p("| consumer lag: commit → ledger entry (ms) | %d | %s | %s | %s | %s |", r.Lag.Consumer.Count, f2(r.Lag.Consumer.P50), f2(r.Lag.Consumer.P90), f2(r.Lag.Consumer.P99), f2(r.Lag.Consumer.Max))
	p("")
	if r.Lag.RelayNote != "" {
		p("Relay: %s", r.Lag.RelayNote)
		p("")
	}
	if r.Lag.ConsumerNote != "" {
		p("Consumer: %s", r.Lag.ConsumerNote)
		p("")
	}
	if c := r.Lag.Commit; c.Count > 0 || r.Lag.CommitNote != "" {
		p("Group commit during the sale (the service's own histogram): %d commits, p50 %s ms, p90 %s ms, p99 %s ms. %s", c.Count, f2(c.P50), f2(c.P90), f2(c.P99), r.Lag.CommitNote)
		p("")
	}
	p("Outbox drained %s s after the load; %d Kafka messages scanned; %d redelivered copies.", f1(r.Lag.DrainWaited), r.Lag.Scanned, r.Lag.Duplicates)
	p("")
	p("## Processes during the load")
	p("")
	procTable(p, l.Processes, l.RequestsPerSec)
}

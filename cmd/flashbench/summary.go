package main

import (
	"fmt"
	"io"
)

// printSummary prints the few lines a person reads first.
func printSummary(w io.Writer, r *Report, dir string) {
	if s := r.Soak; s != nil {
		fmt.Fprintf(w, "\nflashbench %s: soak at %.0f orders/s (%s) for %.0f s: %.0f orders/s, p99 %.2f ms\n",
			r.RunID, s.Rate, s.RateSource, s.Phase.Seconds, s.Phase.PerSecond, s.Phase.Latency.P99)
		printJudged(w, r)
		fmt.Fprintf(w, "verification %s; report in %s/{report.md,report.json}\n", map[bool]string{true: "PASSED", false: "FAILED"}[r.Passed], dir)
		return
	}
	l := r.Load
	all := l.Latency["all"]
	fmt.Fprintf(w, "\nflashbench %s: sale %s, %d units, %d buyers, %s model at %.0f/s\n", r.RunID, l.SaleID, l.Stock, l.Buyers, l.Run.Model, l.Rate)
	fmt.Fprintf(w, "  requests  %d in %.1f s = %.0f req/s; orders %d, %.0f orders/s until sell-out; sold out after %.2f s\n",
		l.Requests, l.Seconds, l.RequestsPerSec, l.Orders, l.OrdersPerSec, l.SelloutClient)
	fmt.Fprintf(w, "  latency   all p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms", all.P50, all.P99, all.P999, all.Max)
	for _, k := range []string{"created", "sold_out"} {
		if s := l.Latency[k]; s.Count > 0 {
			fmt.Fprintf(w, " | %s p99 %.2f", k, s.P99)
		}
	}
	fmt.Fprintln(w)
	ledger := "n/a"
	if r.Lag.Consumer.Count > 0 {
		ledger = fmt.Sprintf("p50 %.1f  p99 %.1f ms over %d orders", r.Lag.Consumer.P50, r.Lag.Consumer.P99, r.Lag.Consumer.Count)
	}
	fmt.Fprintf(w, "  relay lag p50 %.1f  p99 %.1f ms; ledger lag %s\n", r.Lag.Relay.P50, r.Lag.Relay.P99, ledger)
	for _, u := range l.Processes {
		if u.Error == "" {
			fmt.Fprintf(w, "  cpu       %-24s %.2f cores (%.0f%% of the machine), RSS %.0f MB\n", u.Name, u.Cores, u.MachinePct, u.RSSEndMB)
		}
	}
	printJudged(w, r)
	verdict := "PASSED"
	if !r.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "verification %s; report in %s/{report.md,report.json,chart.svg}\n", verdict, dir)
}

// printJudged prints the ratios, the targets and the checks.
func printJudged(w io.Writer, r *Report) {
	for _, x := range r.Ratios {
		fmt.Fprintf(w, "  ratio     %-62s %.2f\n", x.Name, x.Ratio)
	}
	for _, t := range r.Targets {
		met := "not judged"
		if t.Met != nil {
			met = map[bool]string{true: "MET", false: "NOT MET"}[*t.Met]
		}
		fmt.Fprintf(w, "  target    %-36s %-10s %s\n", t.Name, met, t.Measured)
	}
	for _, c := range r.Checks {
		res := "ok"
		if c.Skipped {
			res = "skipped"
		} else if !c.OK {
			res = "FAILED"
		}
		fmt.Fprintf(w, "  check     %-28s %-8s %s\n", c.Name, res, c.Detail)
	}
}

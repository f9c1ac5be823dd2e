package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// medianRun is what `flashbench median` reads of one run's report.json.
type medianRun struct {
	dir     string
	passed  bool
	commit  string
	names   []string // the targets in report order
	targets map[string]Target
	cpu     []float64 // µs per durable order of orderProcs, by index; -1 unread
}

// median prints, as Markdown, issue 12's targets over several runs' reports
// (the directories make bench wrote): each run's value, the median and
// whether the median meets the bound, then each run's CPU per order by
// process. The median is what docs/benchmarks.md quotes; one run on two
// shared cores is not a verdict.
func median(dirs []string, stdout io.Writer) error {
	if len(dirs) == 0 {
		return fmt.Errorf("usage: flashbench median DIR... (directories holding report.json)")
	}
	runs := make([]medianRun, 0, len(dirs))
	for _, d := range dirs {
		r, err := readRun(d)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	writeMedianTable(stdout, runs)
	writeCPUSplit(stdout, runs)
	return nil
}

func readRun(dir string) (medianRun, error) {
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		return medianRun{}, err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return medianRun{}, fmt.Errorf("%s: %w", dir, err)
	}
	r := medianRun{dir: dir, passed: rep.Passed, commit: rep.Machine["commit"], targets: map[string]Target{}}
	for _, t := range rep.Targets {
		r.names = append(r.names, t.Name)
		r.targets[t.Name] = atLeastFromVerdict(t)
	}
	ord := phaseByName(rep.Probes, phaseOrders)
	for _, p := range orderProcs {
		v := -1.0
		if ord != nil {
			if us, ok := perOp(ord, p.name); ok {
				v = us
			}
		}
		r.cpu = append(r.cpu, v)
	}
	return r, nil
}

// atLeastFromVerdict recovers AtLeast for reports written before it was
// recorded: a verdict that "value ≤ bound" contradicts was judged ≥.
func atLeastFromVerdict(t Target) Target {
	if !t.AtLeast && t.Met != nil && t.Value != nil && *t.Met != (*t.Value <= t.Bound) {
		t.AtLeast = true
	}
	return t
}

// targetNames are every run's targets, in the order the runs report them.
func targetNames(runs []medianRun) []string {
	var names []string
	for _, r := range runs {
		for _, n := range r.names {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
}

func writeMedianTable(w io.Writer, runs []medianRun) {
	head, sep := "| target (bound) |", "|---|"
	for i := range runs {
		head += fmt.Sprintf(" run %d |", i+1)
		sep += "---:|"
	}
	fmt.Fprintln(w, head+" median | met (median) |")
	fmt.Fprintln(w, sep+"---:|---|")
	for _, name := range targetNames(runs) {
		fmt.Fprintln(w, medianRow(name, runs))
	}
	fmt.Fprintln(w)
	for i, r := range runs {
		verdict := "passed every check"
		if !r.passed {
			verdict = "FAILED a check"
		}
		if r.commit != "" {
			verdict += ", commit " + r.commit
		}
		fmt.Fprintf(w, "- run %d: %s, %s\n", i+1, r.dir, verdict)
	}
}

// medianRow is one target's values, their median and its verdict; a run
// that did not measure the target shows "–" and is left out of the median.
func medianRow(name string, runs []medianRun) string {
	var vals []float64
	var ref *Target
	cells := ""
	for _, r := range runs {
		t, ok := r.targets[name]
		if !ok || t.Value == nil {
			cells += " – |"
			continue
		}
		if ref == nil {
			ref = &t
		}
		vals = append(vals, *t.Value)
		cells += fmt.Sprintf(" %.2f |", *t.Value)
	}
	if ref == nil {
		return "| " + name + " |" + cells + " – | not measured |"
	}
	sign, m := "≤", medianOf(vals)
	met := m <= ref.Bound
	if ref.AtLeast {
		sign, met = "≥", m >= ref.Bound
	}
	verdict := "no"
	if met {
		verdict = "yes"
	}
	return fmt.Sprintf("| %s (%s %g %s) |%s **%.2f** | %s |", name, sign, ref.Bound, ref.Unit, cells, m, verdict)
}

// medianOf is the middle value, or the mean of the two middle ones.
func medianOf(vals []float64) float64 {
	s := slices.Clone(vals)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// writeCPUSplit lists each run's CPU per durable order by process, in the
// service orders phase, as docs/benchmarks.md quotes it.
func writeCPUSplit(w io.Writer, runs []medianRun) {
	labels := make([]string, 0, len(orderProcs))
	for _, p := range orderProcs {
		labels = append(labels, p.label)
	}
	fmt.Fprintf(w, "\nCPU µs per durable order (%s):\n", strings.Join(labels, " + "))
	var totals []float64
	for i, r := range runs {
		var parts []string
		total := 0.0
		for _, v := range r.cpu {
			if v < 0 {
				parts = append(parts, "?")
				continue
			}
			total += v
			parts = append(parts, fmt.Sprintf("%.0f", v))
		}
		totals = append(totals, total)
		fmt.Fprintf(w, "- run %d: %.0f (%s)\n", i+1, total, strings.Join(parts, " + "))
	}
	fmt.Fprintf(w, "- median: %.0f\n", medianOf(totals))
}

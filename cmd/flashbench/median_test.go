package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeRun writes a report.json with the given targets and the order
// peak's processes (serve, PostgreSQL, Redis, Kafka at these cores while
// 1,000 orders/s) into a new directory.
func writeRun(t *testing.T, passed bool, targets []Target, cores [4]float64) string {
	t.Helper()
	var procs []ProcUsage
	for i, p := range orderProcs {
		procs = append(procs, ProcUsage{Name: p.name, CPUSeconds: cores[i] * 4, Cores: cores[i]})
	}
	rep := Report{Passed: passed, Machine: map[string]string{"commit": "abc1234"}, Targets: targets,
		Probes: []Phase{{Name: phaseOrders, PerSecond: 1000, Processes: procs}}}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "report.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func judged(name string, value, bound float64, atLeast bool) Target {
	return Target{Name: name, Unit: "×"}.judge(value, bound, atLeast, "")
}

func TestMedianJudgesTheMedianNotEachRun(t *testing.T) {
	dirs := []string{
		writeRun(t, true, []Target{judged("cpu", 5, 6, false), judged("rate", 0.95, 0.9, true)}, [4]float64{0.07, 0.06, 0.03, 0.02}),
		writeRun(t, true, []Target{judged("cpu", 7, 6, false), judged("rate", 0.5, 0.9, true)}, [4]float64{0.08, 0.07, 0.03, 0.04}),
		writeRun(t, false, []Target{judged("cpu", 8, 6, false), judged("rate", 0.6, 0.9, true)}, [4]float64{0.09, 0.08, 0.04, 0.05}),
	}
	var out bytes.Buffer
	if err := median(dirs, &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"| cpu (≤ 6 ×) | 5.00 | 7.00 | 8.00 | **7.00** | no |", // one run met it; the median does not
		"| rate (≥ 0.9 ×) | 0.95 | 0.50 | 0.60 | **0.60** | no |",
		"- run 3: " + dirs[2] + ", FAILED a check, commit abc1234",
		"- run 1: 180 (70 + 60 + 30 + 20)",
		"- median: 220",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

func TestMedianOfAnEvenCountAndAMissingValue(t *testing.T) {
	unmeasured := Target{Name: "memory"}
	dirs := []string{
		writeRun(t, true, []Target{judged("lag", 0.2, 1, false), unmeasured}, [4]float64{}),
		writeRun(t, true, []Target{judged("lag", 0.4, 1, false), unmeasured}, [4]float64{}),
		writeRun(t, true, []Target{unmeasured}, [4]float64{}),
	}
	var out bytes.Buffer
	if err := median(dirs, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| lag (≤ 1 ×) | 0.20 | 0.40 | – | **0.30** | yes |", "| memory | – | – | – | – | not measured |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestMedianReadsReportsWrittenBeforeAtLeast(t *testing.T) {
	old := judged("rate", 0.95, 0.9, true)
	old.AtLeast = false // as a report of an older flashbench reads back
	dir := writeRun(t, true, []Target{old}, [4]float64{})
	var out bytes.Buffer
	if err := median([]string{dir}, &out); err != nil {
		t.Fatal(err)
	}
	if want := "| rate (≥ 0.9 ×) | 0.95 | **0.95** | yes |"; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
}

func TestMedianNeedsReports(t *testing.T) {
	if err := median(nil, &bytes.Buffer{}); err == nil {
		t.Error("no directories: no error")
	}
	if err := median([]string{t.TempDir()}, &bytes.Buffer{}); err == nil {
		t.Error("a directory without report.json: no error")
	}
}

func TestRunDispatchesMedian(t *testing.T) {
	dir := writeRun(t, true, []Target{judged("lag", 0.2, 1, false)}, [4]float64{})
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"median", dir}, func(string) string { return "" }, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "| lag (≤ 1 ×) | 0.20 | **0.20** | yes |") {
		t.Errorf("output: %s", out.String())
	}
	if code := run(t.Context(), []string{"median"}, func(string) string { return "" }, &out, &errOut); code != 2 {
		t.Errorf("median without directories: exit %d, want 2", code)
	}
}

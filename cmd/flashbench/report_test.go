package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	series := []SeriesPoint{
		{T: 0, Intended: 500, Done: 480, Counts: map[string]int64{"created": 400, "sold_out": 80}, P50: 1.2, P99: 30, Max: 80},
		{T: 1, Intended: 1000, Done: 1000, Counts: map[string]int64{"sold_out": 990, "overloaded": 10}, P50: 0.4, P99: 2, Max: 5},
		{T: 2, Intended: 1000, Done: 0, Counts: map[string]int64{}},
	}
	r := &Report{RunID: "abc", StartedAt: time.Unix(1_800_000_000, 0), Command: "flashbench --rate 1000",
		Machine: map[string]string{"cpus": "2"}, Settings: map[string]string{"rate": "1000"},
		Load: LoadReport{SaleID: "9", Stock: 400, Rate: 1000, Series: series, Run: RunStats{Model: "open"},
			Latency: map[string]LatencyStats{"all": {Count: 1480, P99: 20}, "created": {Count: 400, P99: 30}}},
		Checks: Verify(goodFacts())}
	r.Checks[0].OK = false
	r.Passed = Passed(r.Checks)
	return r
}

func TestReportFilesAreWrittenAndSayWhatFailed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	r := sampleReport()
	if err := r.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{"verification FAILED", "| no-oversell | **FAILED** |", "chart.svg", "| created | 400 |"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	var back Report
	j, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	if err := json.Unmarshal(j, &back); err != nil || back.Passed || len(back.Checks) != 9 {
		t.Errorf("report.json: %v, passed %v, %d checks", err, back.Passed, len(back.Checks))
	}
	svg, _ := os.ReadFile(filepath.Join(dir, "chart.svg"))
	checkSVG(t, svg)
}

// checkSVG parses the chart as XML and counts its lines.
func checkSVG(t *testing.T, svg []byte) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	polylines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart.svg is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			polylines++
			for _, a := range se.Attr {
				if a.Name.Local == "points" && strings.Contains(a.Value, "NaN") {
					t.Errorf("a NaN in %s", a.Value)
				}
			}
		}
	}
	if polylines != 8 { // 5 throughput lines, 3 latency lines
		t.Errorf("%d polylines, want 8", polylines)
	}
}

func TestChartOfNothingIsStillAnSVG(t *testing.T) {
	if s := Chart(nil, 0); !strings.HasPrefix(s, "<svg") || !strings.Contains(s, "no data") {
		t.Errorf("chart of no data: %q", s)
	}
}

func TestParseStatReadsCPUAndParentPastATrickyName(t *testing.T) {
	// A command name with spaces and a parenthesis; utime 250, stime 50,
	// cutime 100, cstime 0 ticks.
	line := "4242 (post gres: a) b) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 100 0 20 0 1 0 500 1000 200"
	cpu, reaped, ppid, err := parseStat([]byte(line))
	if err != nil || cpu != 3*time.Second || reaped != time.Second || ppid != 17 {
		t.Fatalf("cpu %s reaped %s ppid %d err %v", cpu, reaped, ppid, err)
	}
	if _, _, _, err := parseStat([]byte("4242 (x) S 1")); err == nil {
		t.Error("a short stat line was accepted")
	}
}

func TestSamplerMeasuresThisProcess(t *testing.T) {
	s := StartSampler([]Watched{{Name: "self"}, {Name: "self by pid", PID: os.Getpid(), Tree: true}}, 50*time.Millisecond)
	deadline := time.Now().Add(300 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++ // burn CPU
	}
	us := s.Stop(2)
	if x == 0 || len(us) != 2 {
		t.Fatal(len(us))
	}
	for _, u := range us {
		if u.Error != "" || u.CPUSeconds < 0.1 || u.Cores < 0.3 || u.RSSEndMB <= 0 || len(u.Series) < 3 {
			t.Errorf("%s: %+v", u.Name, u)
		}
	}
}

func TestOptionsFlagsWinOverTheEnvironment(t *testing.T) {
	env := map[string]string{"FLASHBENCH_RATE": "1234", "FLASHBENCH_STOCK": "77", "FLASHBENCH_CEILINGS": "true"}
	o, _, err := parseOptions([]string{"--stock", "88", "--proc", "postgres=12+flashsale_0,flashsale_1"},
		func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Rate != "1234" || o.Stock != 88 || !o.Ceilings {
		t.Errorf("rate %s stock %d ceilings %v", o.Rate, o.Stock, o.Ceilings)
	}
	w, err := parseProc(o.Procs[0])
	if err != nil || w.PID != 12 || !w.Tree || len(w.Match) != 2 || w.Name != "postgres" {
		t.Errorf("proc %+v %v", w, err)
	}
	for _, bad := range [][]string{{"--model", "half-open"}, {"--rate", "-1"}, {"--quantity", "2"}, {"--proc", "x"}} {
		if _, _, err := parseOptions(bad, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestMemoryFlatJudgesTheLastThirdAgainstTheMiddle feeds memoryFlat a
// warm-up then a garbage collector's sawtooth (flat), the same with a
// steady climb (a leak), and a run too short to judge.
func TestMemoryFlatJudgesTheLastThirdAgainstTheMiddle(t *testing.T) {
	series := func(seconds int, rss func(s int) float64) []ProcPoint {
		var out []ProcPoint
		for s := 1; s <= seconds; s++ {
			out = append(out, ProcPoint{T: float64(s), RSSMB: rss(s)})
		}
		return out
	}
	warmSaw := func(s int) float64 { return min(120, 40+4*float64(s)) + float64(s%5)*3 }
	leak := func(s int) float64 { return warmSaw(s) + 1.5*float64(s) }
	if met, text := memoryFlat(series(90, warmSaw)); met == nil || !*met {
		t.Errorf("warm-up and sawtooth judged %v: %s", met, text)
	}
	if met, text := memoryFlat(series(90, leak)); met == nil || *met {
		t.Errorf("a climb of 1.5 MB/s judged %v: %s", met, text)
	}
	if met, text := memoryFlat(series(30, warmSaw)); met != nil || !strings.Contains(text, "not judged") {
		t.Errorf("30 s judged %v: %s", met, text)
	}
}

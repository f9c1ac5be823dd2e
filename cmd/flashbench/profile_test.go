package main

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	httppprof "net/http/pprof"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"
)

// burnForTheProfile spins long enough for the profiler to sample it.
//
//go:noinline
func burnForTheProfile(d time.Duration) uint64 {
	var x uint64 = 1
	for end := time.Now().Add(d); time.Now().Before(end); {
		for range 10000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	return x
}

// TestParseProfileReadsAGoCPUProfile profiles this process and finds the
// function that burnt the CPU in the decoded stacks, with its time.
func TestParseProfileReadsAGoCPUProfile(t *testing.T) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		t.Skip("a CPU profile is already running:", err)
	}
	_ = burnForTheProfile(300 * time.Millisecond)
	pprof.StopCPUProfile()
	stacks, err := parseProfile(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var burnt, total int64
	for _, s := range stacks {
		total += s.nanos
		for _, fn := range s.funcs {
			if strings.HasSuffix(fn, ".burnForTheProfile") {
				burnt += s.nanos
				break
			}
		}
	}
	if burnt < int64(50*time.Millisecond) || burnt > total {
		t.Errorf("burnForTheProfile has %v of %v sampled", time.Duration(burnt), time.Duration(total))
	}
}

func TestStagesFollowTheStacks(t *testing.T) {
	cases := []struct {
		stage string
		funcs []string // leaf first
	}{
		{"json", []string{"runtime.mallocgc", "encoding/json.(*encodeState).marshal", "flashsale/api.writeJSON", "net/http.HandlerFunc.ServeHTTP"}},
		{"commit (PostgreSQL client, group commit)", []string{"syscall.Syscall", "internal/poll.(*FD).Write", "net.(*conn).Write", "github.com/jackc/pgx/v5/pgconn.(*PgConn).flush", "flashsale/internal/batch.(*Batcher[...]).Run"}},
		{"relay", []string{"github.com/jackc/pgx/v5.(*Conn).Query", "encoding/json.Marshal", "flashsale/outbox.(*Relay).Run"}},
		{"consumers", []string{"encoding/json.Unmarshal", "flashsale/consumer.(*Consumer).Run"}},
		{"reserve (Redis client)", []string{"bufio.(*Reader).Read", "github.com/redis/go-redis/v9/internal/proto.(*Reader).ReadReply", "flashsale/inventory/invredis.(*Stock).Reserve"}},
		{"auth (JWT)", []string{"crypto/sha256.block", "crypto/hmac.(*hmac).Sum", "flashsale/auth.Verify", "flashsale/api.(*API).buy"}},
		{"http (net/http, api)", []string{"syscall.Syscall", "net.(*conn).Read", "net/http.(*conn).readRequest"}},
		{"background loops", []string{"github.com/jackc/pgx/v5.(*Conn).Exec", "flashsale/order.(*Expirer).Run"}},
		{"garbage collector", []string{"runtime.scanobject", "runtime.gcBgMarkWorker"}},
		{"runtime and other", []string{"runtime.futex", "runtime.mstart"}},
	}
	for _, c := range cases {
		if got := stageOf(c.funcs); got != c.stage {
			t.Errorf("%v: stage %q, want %q", c.funcs, got, c.stage)
		}
	}
	shares, cpu := stageShares([]stack{{funcs: cases[0].funcs, nanos: 3e8}, {funcs: cases[2].funcs, nanos: 1e8}}, 200)
	if len(shares) != 2 || shares[0].Stage != "json" || math.Abs(shares[0].Share-0.75) > 1e-9 || math.Abs(shares[0].PerOp-150) > 1e-9 || math.Abs(cpu-0.4) > 1e-9 {
		t.Errorf("shares %+v, cpu %v", shares, cpu)
	}
}

func TestBucketsGiveTheCommitsQuantilesBetweenTwoScrapes(t *testing.T) {
	scrape := func(n1, n2, n3 int) Buckets {
		text := "# HELP flashsale_store_seconds x\n" +
			"flashsale_store_seconds_bucket{op=\"create\",outcome=\"ok\",le=\"0.01\"} " + strconv.Itoa(n1) + "\n" +
			"flashsale_store_seconds_bucket{op=\"create\",outcome=\"ok\",le=\"0.02\"} " + strconv.Itoa(n2) + "\n" +
			"flashsale_store_seconds_bucket{op=\"create\",outcome=\"ok\",le=\"+Inf\"} " + strconv.Itoa(n3) + "\n" +
			"flashsale_store_seconds_bucket{op=\"create\",outcome=\"error\",le=\"0.01\"} 999\n" +
			"flashsale_store_seconds_bucket{op=\"get\",outcome=\"ok\",le=\"+Inf\"} 999\n"
		b, err := parseBuckets(strings.NewReader(text), commitSeries, map[string]string{"op": "create", "outcome": "ok"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	before, after := scrape(100, 100, 100), scrape(150, 200, 200) // 100 new commits: 50 ≤ 10 ms, 50 in (10, 20] ms
	if after.Count() != 200 {
		t.Fatalf("the create/ok series hold 200 commits, read %v: other series counted", after.Count())
	}
	d := after.Since(before)
	if d.Count() != 100 {
		t.Fatalf("count %v", d.Count())
	}
	if p50, p99 := d.Quantile(0.5), d.Quantile(0.99); math.Abs(p50-10) > 1e-9 || math.Abs(p99-19.8) > 1e-9 {
		t.Errorf("p50 %v p99 %v, want 10 and 19.8", p50, p99)
	}
	if st, note := commitStats(before, after, nil); st.Count != 100 || math.Abs(st.P99-19.8) > 1e-9 || note == "" {
		t.Errorf("commit stats %+v %q", st, note)
	}
	if st, note := commitStats(nil, nil, nil); st.Count != 0 || !strings.Contains(note, "--debug-url") {
		t.Errorf("without the debug listener: %+v %q", st, note)
	}
}

// TestTheServeProfileIsKeptBesideTheReport: the stage split is a summary;
// the raw profile is saved in the report's directory for go tool pprof.
func TestTheServeProfileIsKeptBesideTheReport(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "report")
	b := &bench{opts: &Options{DebugURL: srv.URL, PhaseDuration: time.Second}, outDir: dir, log: io.Discard}
	p := b.startProfile(context.Background())(&Phase{Name: "orders"})
	if p.Error != "" || p.File != "serve-cpu.pprof" {
		t.Fatalf("profile: error %q, file %q", p.Error, p.File)
	}
	raw, err := os.ReadFile(filepath.Join(dir, p.File))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseProfile(raw); err != nil {
		t.Errorf("the kept file is not a profile: %v", err)
	}
}

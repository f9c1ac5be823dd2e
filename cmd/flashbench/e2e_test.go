package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"flashsale/app"
	"flashsale/config"
	"flashsale/internal/apptest"
	"flashsale/internal/testenv"
)

// startService runs flashsale in-process on the real stack (scripts/stack.sh
// up): fresh databases, a private Redis prefix and Kafka topic, the relay
// on, the per-IP limit raised like scripts/bench.sh does.
func startService(t *testing.T) (*config.Config, string) {
	t.Helper()
	cfg, url, _ := startServiceWith(t, true)
	return cfg, url
}

// startServiceWith is startService with the relay on or (with the
// consumers, as testenv leaves them) off; it also serves the debug
// listener, as serve --debug-addr does, and returns its URL.
func startServiceWith(t *testing.T, relay bool) (*config.Config, string, string) {
	t.Helper()
	cfg := testenv.Config(t, 4)
	testenv.Topic(t, cfg)
	cfg.RelayEnabled = relay
	cfg.IPRate, cfg.IPBurst = 1_000_000, 1_000_000
	inst := apptest.Start(t, cfg, apptest.Options{})
	dln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	debug := &http.Server{Handler: app.DebugHandler(inst.App.Metrics()), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = debug.Serve(dln) }()
	t.Cleanup(func() { _ = debug.Close() })
	return cfg, inst.Base, "http://" + dln.Addr().String()
}

// envOf is the environment that points flashbench at cfg, as the service
// reads it.
func envOf(cfg *config.Config) func(string) string {
	env := map[string]string{
		"FLASHSALE_DATABASE_URLS": strings.Join(cfg.DatabaseURLs, ","),
		"FLASHSALE_REDIS_ADDRS":   strings.Join(cfg.RedisAddrs, ","),
		"FLASHSALE_REDIS_PREFIX":  cfg.RedisPrefix,
		"FLASHSALE_KAFKA_BROKERS": strings.Join(cfg.KafkaBrokers, ","),
		"FLASHSALE_KAFKA_TOPIC":   cfg.KafkaTopic,
		"FLASHSALE_SHARDS":        strconv.Itoa(cfg.Shards),
		"FLASHSALE_JWT_SECRET":    cfg.JWTSecret,
	}
	return func(k string) string { return env[k] }
}

// TestBenchAgainstTheRealServiceVerifiesAndCatchesARogueOrder runs
// flashbench end to end, ceilings included, against the service on the
// real stack; then it slips an order past the service into PostgreSQL and
// checks that the same collection and verification catch it.
func TestBenchAgainstTheRealServiceVerifiesAndCatchesARogueOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the stack")
	}
	cfg, url, debugURL := startServiceWith(t, true)
	_, offURL, _ := startServiceWith(t, false)
	self := strconv.Itoa(os.Getpid())
	out := filepath.Join(t.TempDir(), "report")
	args := []string{"--url", url, "--debug-url", debugURL, "--off-url", offURL, "--off-service-pid", self, "--service-pid", self, "--out", out, "--buyers", "400", "--stock", "40", "--limit", "1",
		"--rate", "400", "--ramp", "200ms", "--duration", "1s", "--ledger", "skip",
		"--ceilings", "--phase-duration", "300ms", "--http-conc", "16", "--lua-conc", "8", "--insert-conc", "16", "--orders-conc", "16",
		"--drain-timeout", "20s", "--proc", "self-again=" + strconv.Itoa(os.Getpid())}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, envOf(cfg), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	var rep Report
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Passed || rep.Load.Orders != 40 || rep.Load.UnitsSold != 40 || rep.Load.Remaining != 0 {
		t.Fatalf("passed %v, orders %d, sold %d, remaining %d", rep.Passed, rep.Load.Orders, rep.Load.UnitsSold, rep.Load.Remaining)
	}
	if rep.Lag.Relay.Count != 40 {
		t.Errorf("relay lag measured over %d events, want 40", rep.Lag.Relay.Count)
	}
	// The bare handler closed then open, Lua, insert; sold-out and orders, each closed then open, and orders with relay and consumers off.
	if len(rep.Ceilings) != 4 || len(rep.Probes) != 5 || len(rep.Ratios) < 5 {
		t.Errorf("%d ceilings, %d probes, %d ratios", len(rep.Ceilings), len(rep.Probes), len(rep.Ratios))
	}
	for _, ph := range append(rep.Ceilings, rep.Probes...) {
		if ph.Error != "" || ph.PerSecond <= 0 {
			t.Errorf("phase %s: %+v", ph.Name, ph)
		}
	}
	checkIssue12Figures(t, &rep)
	for _, f := range []string{"report.md", "chart.svg"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}

	// A rogue order, written behind the service's back: one unit more than
	// the stock, with no event and no reservation.
	opts, fs, _ := parseOptions(args, func(string) string { return "" }, &stderr)
	bn, err := newBench(context.Background(), opts, fs, args, envOf(cfg), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer bn.close()
	if id, err := bn.createSale(context.Background(), "SEVEN", 7, 1); err != nil {
		t.Fatal(err)
	} else if rem, err := bn.remaining(context.Background(), id); err != nil || rem != 7 {
		t.Fatalf("remaining of a new sale of 7: %d, %v", rem, err)
	}
	sid, _ := strconv.ParseInt(rep.Load.SaleID, 10, 64)
	if _, err := bn.pools[0].Exec(context.Background(), `INSERT INTO shard_0000.orders
		(sale_id, user_id, idempotency_key, request_hash, quantity, amount_cents, currency, expires_at)
		VALUES ($1, 'rogue', 'rogue-key', '\x00', 1, 1, 'EUR', now() + interval '1 hour')`, sid); err != nil {
		t.Fatal(err)
	}
	facts, _, err := bn.gather(context.Background(), rep.Load.SaleID, nil, 0, 400, map[int]int64{})
	if err != nil {
		t.Fatal(err)
	}
	got := failed(Verify(facts))
	want := []string{"no-oversell", "one-created-event-per-order", "redis-stock-balance"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("after a rogue order the failed checks are %v, want %v", got, want)
	}
}

// checkIssue12Figures: the run read the group commit's latency and serve's
// profile through the debug listener, and judged every target that needs
// no more than this process to watch (PostgreSQL, Redis and Kafka are not
// watched here, so CPU per order is not).
func checkIssue12Figures(t *testing.T, rep *Report) {
	t.Helper()
	if rep.Lag.Commit.Count == 0 || rep.Lag.Commit.P99 <= 0 {
		t.Errorf("group commit not read: %+v %s", rep.Lag.Commit, rep.Lag.CommitNote)
	}
	if p := rep.Profile; p == nil || p.Error != "" || len(p.Stages) == 0 || p.CPU <= 0 {
		t.Errorf("serve's profile: %+v", p)
	}
	judged := map[string]bool{}
	for _, tg := range rep.Targets {
		judged[tg.Name] = tg.Met != nil && tg.Value != nil
	}
	for _, name := range []string{"durable orders/s", "time to sell out", "sale latency p99, all answers",
		"sale latency p99, losers (sold-out answers)", "relay lag p99", "relay + consumers cost", "sold-out answers"} {
		if !judged[name] {
			t.Errorf("target %q not judged", name)
		}
	}
	if judged["CPU per durable order"] {
		t.Error("CPU per order judged without PostgreSQL, Redis and Kafka watched")
	}
}

// TestSoakJudgesServesMemory runs the soak's mechanics briefly: the order
// path at a fixed rate, serve's RSS second by second, judged after the
// warm-up, every request an order.
func TestSoakJudgesServesMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the stack")
	}
	cfg, url := startService(t)
	out := filepath.Join(t.TempDir(), "soak")
	args := []string{"--url", url, "--out", out, "--buyers", "200", "--soak-duration", "5s", "--soak-warmup", "2s",
		"--soak-rate", "100", "--service-pid", strconv.Itoa(os.Getpid())}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), args, envOf(cfg), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	var rep Report
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Soak == nil || rep.Soak.RSS == nil || len(rep.Soak.RSS.Series) < 4 || rep.Soak.Phase.OKOps < 400 {
		t.Fatalf("soak: %+v", rep.Soak)
	}
	if len(rep.Targets) != 1 || rep.Targets[0].Met == nil || rep.Targets[0].Value == nil {
		t.Errorf("soak targets: %+v", rep.Targets)
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !bytes.Contains(md, []byte("## Soak")) || !bytes.Contains(md, []byte("memory flat (soak)")) {
		t.Errorf("report.md lacks the soak:\n%s", md)
	}
}

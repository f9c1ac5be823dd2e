//go:build scale

package chaos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"flashsale/shard"
)

// The topology of scripts/scale.sh, as the cross-process test drives it:
// two serve processes behind HAProxy, two PostgreSQL servers, the Redis
// Cluster, the consumers as processes of their own. `make scale-test`
// starts it (STACK_NAME=scaletest) and runs this file with -tags scale.

const (
	scaleInstances = 2
	scaleShards    = 16 // config's default, which scale.sh's processes run with
)

// scaleTimings are the chaos suite's short timings, given to every process
// scale.sh starts, so that what a kill leaves settles in seconds.
var scaleTimings = append(timings(), "FLASHSALE_IP_RATE=1000000", "FLASHSALE_IP_BURST=1000000", "FLASHSALE_LOG_LEVEL=warn")

// topology is what scale.sh up printed, and where its pid files are.
type topology struct {
	env    map[string]string
	runDir string // scale.sh's pid files: serve-<i>.pid
}

// scaleUp starts the topology (idempotent: what runs stays, what is
// missing starts) and reads its settings.
func scaleUp(t *testing.T) topology {
	t.Helper()
	out := script(t, "../scripts/scale.sh", "up", strconv.Itoa(scaleInstances))
	top := topology{env: parseLines(strings.ReplaceAll(out, "export ", ""))}
	top.runDir = parseLines(script(t, "../scripts/stack.sh", "paths"))["STACK_DIR"] + "/scale/run"
	if top.env["FLASHSALE_SCALE_URL"] == "" || len(top.dbs()) != 2 {
		t.Fatalf("scripts/scale.sh up printed no usable topology:\n%s", out)
	}
	return top
}

func script(t *testing.T, path string, args ...string) string {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), scaleTimings...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", path, strings.Join(args, " "), err, tail(errb.String(), 3000))
	}
	return out.String()
}

// scaleSecret is the JWT secret scale.sh gives its processes: the caller's,
// or the same development default.
func scaleSecret() string {
	if s := os.Getenv("FLASHSALE_JWT_SECRET"); s != "" {
		return s
	}
	return "dev-secret-change-me-0123456789"
}

func (top topology) dbs() []string { return strings.Split(top.env["FLASHSALE_DATABASE_URLS"], ",") }

// servePid reads serve-i's pid from scale.sh's pid file.
func (top topology) servePid(t *testing.T, i int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("%s/serve-%d.pid", top.runDir, i))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// run is a chaos run over the topology: its buyers go through HAProxy, its
// facts come from both PostgreSQL servers and the topology's topic.
func (top topology) run(name string, stock, buyers int) *Run {
	s := &Suite{Stack: &Stack{KafkaBrokers: strings.Split(top.env["FLASHSALE_KAFKA_BROKERS"], ",")},
		Secret: scaleSecret(), Stock: stock, Buyers: buyers, Workers: 256,
		Rate: 1e6, ClientTimeout: 3 * time.Second, Budget: 30 * time.Second, RecoveryBound: 30 * time.Second,
		Out: os.Stdout, Err: os.Stderr}
	lb := &Instance{Proc: &Proc{Name: "haproxy", done: make(chan struct{})}, URL: top.env["FLASHSALE_SCALE_URL"]}
	return &Run{Suite: s, Scenario: Scenario{Name: name}, DBs: top.dbs(), Topic: top.env["FLASHSALE_KAFKA_TOPIC"],
		Insts: []*Instance{lb}}
}

// TestScaleOutAcrossProcesses: a burst of buyers through HAProxy over two
// serve processes sells exactly the stock, every order on its buyer's
// shard's server, every event once, the relay shards shared and never
// published twice; then kill -9 of one instance mid-burst loses no
// acknowledged order, and its relay shards move to the survivor within
// the lease TTL.
func TestScaleOutAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	top := scaleUp(t)
	books, err := OpenBooks(ctx, top.dbs())
	if err != nil {
		t.Fatal(err)
	}
	defer books.Close()
	t.Run("burst", func(t *testing.T) { burst(t, top, books) })
	t.Run("kill-one-instance", func(t *testing.T) { killOne(t, top, books) })
}

func burst(t *testing.T, top topology, books *Books) {
	ctx := context.Background()
	r := top.run("scale-burst", 300, 1500)
	cpu0 := serveCPU(t, top)
	res := runScenario(t, r)
	cpu1 := serveCPU(t, top)
	if res.Created != r.Stock || res.Redelivered != 0 {
		t.Errorf("%d 201s for a stock of %d, %d events published twice (want none without a fault)", res.Created, r.Stock, res.Redelivered)
	}
	var total float64
	for i := range cpu1 {
		total += cpu1[i] - cpu0[i]
	}
	for i := range cpu1 {
		if share := (cpu1[i] - cpu0[i]) / total; share < 0.2 {
			t.Errorf("serve-%d did %.0f %% of the serves' work in the burst: HAProxy did not spread it", i+1, 100*share)
		}
	}
	checkPlacement(t, ctx, books, r.SaleID)
	holders := leaseHolders(t, ctx, books)
	for h, n := range holders {
		if n > scaleShards/scaleInstances {
			t.Errorf("relay %s holds %d shards, more than its fair share %d: %v", h, n, scaleShards/scaleInstances, holders)
		}
	}
}

func killOne(t *testing.T, top topology, books *Books) {
	ctx := context.Background()
	t.Cleanup(func() { scaleUp(t) }) // brings serve-2 back
	victim := fmt.Sprintf("/%d", top.servePid(t, 2))
	r := top.run("scale-kill", 1000, 4000)
	r.At = 200 * time.Millisecond
	var moved time.Duration
	r.Fault = func(ctx context.Context, r *Run) error {
		pid := top.servePid(t, 2)
		r.Excuse(0, time.Now(), time.Time{})
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return err
		}
		r.Logf("scale-kill: kill -9 serve-2 (pid %d)", pid)
		killed := time.Now()
		last := ""
		ok, took := poll(ctx, RelayLeaseTTL+10*time.Second, 100*time.Millisecond, func() bool {
			h := leaseHolders(t, ctx, books)
			if now := fmt.Sprint(h); now != last {
				r.Logf("scale-kill: relay shards by holder %s, %.1fs after the kill", now, time.Since(killed).Seconds())
				last = now
			}
			return survivorHoldsAll(h, victim)
		})
		moved = took
		r.Logf("scale-kill: every relay shard held by the survivor %t, %.1fs after the kill", ok, time.Since(killed).Seconds())
		return nil
	}
	res := runScenario(t, r)
	if res.Created == 0 || res.Lost != 0 {
		t.Errorf("%d 201s, %d acknowledged orders lost", res.Created, res.Lost)
	}
	if h := leaseHolders(t, ctx, books); !survivorHoldsAll(h, victim) {
		t.Fatalf("relay shards after the kill: %v, want all %d with the survivor", h, scaleShards)
	}
	if bound := RelayLeaseTTL + 3*time.Second; moved > bound {
		t.Errorf("the killed instance's shards moved after %v, want within the lease TTL %v (+3 s)", moved, RelayLeaseTTL)
	}
	checkPlacement(t, ctx, books, r.SaleID)
}

// survivorHoldsAll reports whether one holder, not the victim (its name
// ends in "/pid"), leases every shard.
func survivorHoldsAll(h map[string]int, victim string) bool {
	if len(h) != 1 {
		return false
	}
	ok := false
	for name, n := range h {
		ok = n == scaleShards && !strings.HasSuffix(name, victim)
	}
	return ok
}

// runScenario creates the sale, drives the buyers (and the fault), gathers
// the facts and fails the test on any breached invariant.
func runScenario(t *testing.T, r *Run) Result {
	t.Helper()
	ctx := context.Background()
	if err := r.createSale(ctx); err != nil {
		t.Fatal(err)
	}
	buyers, recovery, recovered, err := r.drive(ctx, fmt.Sprintf("%s-%d", r.Name, time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	f, err := r.gather(ctx, buyers)
	if err != nil {
		t.Fatal(err)
	}
	f.Recovery, f.Recovered, f.RecoveryBound = recovery, recovered || r.Fault == nil, r.RecoveryBound
	res := Check(f)
	t.Logf("%s: %d requests, %d 201s, %d orders, %d events (%d redelivered), %d live units, %d remaining, %d 5xx, %d timeouts",
		r.Name, res.Requests, res.Created, res.Orders, res.Events, res.Redelivered, res.LiveUnits, res.Remaining, res.Answers5xx, res.Timeouts)
	for _, b := range res.Breaches {
		t.Errorf("%s: %s: %s %v", r.Name, b.Invariant, b.Detail, b.IDs)
	}
	return res
}

// checkPlacement: every order of the sale is in the shard its buyer maps
// to, on the server that shard's database lives on.
func checkPlacement(t *testing.T, ctx context.Context, books *Books, saleID string) {
	t.Helper()
	m, err := shard.NewMap(scaleShards, len(books.Pools))
	if err != nil {
		t.Fatal(err)
	}
	misplaced, n := 0, 0
	for db, p := range books.Pools {
		for _, schema := range schemasOf(t, ctx, p) {
			rows, err := p.Query(ctx, "SELECT user_id FROM "+schema+".orders WHERE sale_id = $1", saleID)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var user string
				if err := rows.Scan(&user); err != nil {
					t.Fatal(err)
				}
				n++
				if sh := m.ForUser(user); sh.Schema() != schema || m.Database(sh) != db {
					misplaced++
					t.Errorf("buyer %s's order is in %s of database %d, want %s of database %d", user, schema, db, sh.Schema(), m.Database(sh))
				}
			}
			rows.Close()
		}
	}
	t.Logf("placement: %d orders over %d servers, %d misplaced (%s)", n, len(books.Pools), misplaced, serverNames(books))
}

func schemasOf(t *testing.T, ctx context.Context, p *pgxpool.Pool) []string {
	t.Helper()
	s, err := shardSchemas(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func serverNames(b *Books) string {
	var names []string
	for _, p := range b.Pools {
		c := p.Config().ConnConfig
		names = append(names, fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database))
	}
	return strings.Join(names, ", ")
}

// leaseHolders counts the relay shards each holder leases, over every
// shard of both servers; every shard must have a holder.
func leaseHolders(t *testing.T, ctx context.Context, books *Books) map[string]int {
	t.Helper()
	out, shards := map[string]int{}, 0
	for _, p := range books.Pools {
		for _, schema := range schemasOf(t, ctx, p) {
			var holder *string
			if err := p.QueryRow(ctx, "SELECT holder FROM "+schema+".relay_lease").Scan(&holder); err != nil {
				t.Fatal(err)
			}
			shards++
			if holder != nil {
				out[*holder]++
			}
		}
	}
	if shards != scaleShards {
		t.Fatalf("%d shard schemas over both servers, want %d", shards, scaleShards)
	}
	return out
}

// serveCPU is each serve process's CPU seconds so far (utime + stime).
func serveCPU(t *testing.T, top topology) []float64 {
	t.Helper()
	out := make([]float64, scaleInstances)
	for i := range out {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", top.servePid(t, i+1)))
		if err != nil {
			t.Fatal(err)
		}
		// Fields after the command name, which is in parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		out[i] = (ut + st) / 100 // USER_HZ
	}
	return out
}

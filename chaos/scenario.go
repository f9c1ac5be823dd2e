package chaos

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Scenario is one fault: how many serve processes it needs, whether the
// inventory consumer runs as a process of its own, and the fault itself.
type Scenario struct {
	Name     string
	Serves   int
	Consumer bool
	At       time.Duration // when the fault starts, after the first buyer
	// Fault injects the fault and undoes it; it returns when the broken
	// part is back, from which the suite times /readyz.
	Fault func(ctx context.Context, r *Run) error
	// Balanced, when set, is how soon after the fault was undone the units
	// in live orders plus the remaining stock must make the stock again,
	// with the buyers still running: shorter than the reservation grace,
	// so that what gave held units back was not the reconciler.
	Balanced time.Duration
}

// Run is one scenario in progress: its private databases, Redis prefix,
// topic and processes.
type Run struct {
	*Suite
	Scenario
	DBs      []string
	Prefix   string
	Topic    string
	Insts    []*Instance
	Consumer *Proc
	SaleID   string

	mu      sync.Mutex
	windows []Window
	undone  time.Time // when the fault was undone
	early   early     // the balance soon after the fault (Scenario.Balanced)
}

// Excuse records that the suite made instance target unreachable from
// from until to; a zero to stays open until closeWindows.
func (r *Run) Excuse(target int, from, to time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.windows = append(r.windows, Window{Target: target, From: from, To: to})
}

// closeWindows ends every open window at t: the instance answers again.
func (r *Run) closeWindows(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.windows {
		if r.windows[i].To.IsZero() {
			r.windows[i].To = t
		}
	}
}

// dbURL is the instance's URL of database name.
func (r *Run) dbURL(name string) string {
	u, _ := url.Parse(r.Stack.DatabaseURLs[0])
	u.Path = "/" + name
	return u.String()
}

// freshDatabases drops and creates the scenario's two databases and
// applies the migrations with flashsale migrate up.
func (r *Run) freshDatabases(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, r.dbURL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	base := "chaos_" + strings.ReplaceAll(r.Name, "-", "_")
	r.DBs = nil
	for i := range 2 {
		db := fmt.Sprintf("%s_%d", base, i)
		for _, q := range []string{"DROP DATABASE IF EXISTS " + db + " WITH (FORCE)", "CREATE DATABASE " + db + " OWNER flashsale"} {
			if _, err := conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		r.DBs = append(r.DBs, r.dbURL(db))
	}
	cmd := exec.CommandContext(ctx, r.Bin, "migrate", "up")
	cmd.Env = append(os.Environ(), r.env(false)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("flashsale migrate up: %w: %s", err, tail(string(out), 2000))
	}
	return nil
}

// env is the FLASHSALE_* settings of the scenario's processes: short
// timings so that a scenario settles in seconds.
func (r *Run) env(consumers bool) []string {
	return append([]string{
		"FLASHSALE_DATABASE_URLS=" + strings.Join(r.DBs, ","),
		"FLASHSALE_REDIS_ADDRS=" + strings.Join(r.Stack.RedisAddrs, ","),
		"FLASHSALE_REDIS_PREFIX=" + r.Prefix,
		"FLASHSALE_KAFKA_BROKERS=" + strings.Join(r.Stack.KafkaBrokers, ","),
		"FLASHSALE_KAFKA_TOPIC=" + r.Topic,
		"FLASHSALE_KAFKA_PARTITIONS=4",
		"FLASHSALE_DEAD_LETTER_TOPIC=" + r.Topic + ".dlq",
		"FLASHSALE_CONSUMER_GROUP_PREFIX=" + r.Prefix,
		"FLASHSALE_JWT_SECRET=" + r.Secret,
		"FLASHSALE_MIGRATE_ON_START=false",
		"FLASHSALE_IP_RATE=100000",
		"FLASHSALE_IP_BURST=100000",
		"FLASHSALE_SHUTDOWN_TIMEOUT=5s",
		"FLASHSALE_LOG_LEVEL=warn",
		fmt.Sprintf("FLASHSALE_CONSUMERS_ENABLED=%t", consumers),
	}, timings()...)
}

// timings are the settings of the constants below, for a process's env.
func timings() []string {
	return []string{
		"FLASHSALE_COMMIT_DEADLINE=" + CommitDeadline.String(),
		"FLASHSALE_RESERVATION_GRACE=" + ReservationGrace.String(),
		"FLASHSALE_RECONCILE_INTERVAL=" + ReconcileInterval.String(),
		"FLASHSALE_RELAY_LEASE_TTL=" + RelayLeaseTTL.String(),
	}
}

// The timings every scenario's processes run with.
const (
	CommitDeadline    = 3 * time.Second
	ReservationGrace  = 6 * time.Second
	ReconcileInterval = 2 * time.Second
	RelayLeaseTTL     = 4 * time.Second
)

// startProcesses starts the serve instances (and the consumer) and waits
// until every one is ready.
func (r *Run) startProcesses(ctx context.Context) error {
	for i := range r.Serves {
		port, err := freePort()
		if err != nil {
			return err
		}
		env := append(r.env(!r.Scenario.Consumer), fmt.Sprintf("FLASHSALE_HTTP_ADDR=127.0.0.1:%d", port))
		p := NewProc(fmt.Sprintf("serve-%d", i), r.Bin, []string{"serve"}, env, r.logPath(fmt.Sprintf("serve-%d", i)), r.Logf)
		if err := p.Start(); err != nil {
			return err
		}
		r.Insts = append(r.Insts, &Instance{Proc: p, URL: fmt.Sprintf("http://127.0.0.1:%d", port)})
	}
	if r.Scenario.Consumer {
		r.Consumer = NewProc("consume-inventory", r.Bin, []string{"consume", "inventory"}, r.env(false), r.logPath("consume"), r.Logf)
		if err := r.Consumer.Start(); err != nil {
			return err
		}
	}
	if _, err := WaitReady(ctx, r.Insts, 90*time.Second); err != nil || r.Consumer == nil {
		return err
	}
	return r.waitConsumerJoined(ctx)
}

// waitConsumerJoined waits until the inventory consumer holds partitions
// of the topic. A consumer still joining its group when the sale starts
// applies the sale's events only once it has sold out, all in a batch or
// two, and a kill meant for the middle of its work lands before or after
// all of it (in CI the consumer-kill9 fault once found no entry yet).
func (r *Run) waitConsumerJoined(ctx context.Context) error {
	group := r.Prefix + "-inventory"
	ok, took := poll(ctx, 60*time.Second, 100*time.Millisecond, func() bool {
		return groupAssigned(ctx, r.Stack.KafkaBrokers[0], group, r.Topic)
	})
	if !ok {
		return fmt.Errorf("the inventory consumer did not join group %s within %s", group, took.Round(time.Second))
	}
	r.Logf("%s: consumer joined group %s after %s", r.Name, group, took.Round(time.Millisecond))
	return nil
}

func (r *Run) logPath(proc string) string {
	return filepath.Join(r.LogDir, r.Name+"-"+proc+".log")
}

// stopProcesses ends every process the scenario started.
func (r *Run) stopProcesses() {
	for _, in := range r.Insts {
		in.Stop(10 * time.Second)
	}
	if r.Consumer != nil {
		r.Consumer.Stop(10 * time.Second)
	}
}

// createSale opens the scenario's sale through the admin API.
func (r *Run) createSale(ctx context.Context) error {
	now := time.Now().UTC()
	body := fmt.Sprintf(`{"sku":"CHAOS-%s","title":"chaos %s","price_cents":1000,"currency":"EUR","stock":%d,`+
		`"per_user_limit":1,"starts_at":%q,"ends_at":%q}`, strings.ToUpper(r.Name), r.Name, r.Stock,
		now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	id, err := r.adminCreate(ctx, r.Insts[0].URL, body)
	r.SaleID = id
	return err
}

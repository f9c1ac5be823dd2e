package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Scenarios is every fault of the suite, in the order it runs them.
func Scenarios() []Scenario {
	return []Scenario{
		{Name: "serve-kill9", Serves: 1, At: 1500 * time.Millisecond, Fault: killServe},
		{Name: "redis1-kill9", Serves: 1, At: 1500 * time.Millisecond, Fault: killRedis1},
		{Name: "redis1-rollback", Serves: 1, At: time.Second, Fault: rollbackRedis1},
		{Name: "redis1-sigstop", Serves: 1, At: time.Second, Fault: pauseRedis1, Balanced: ReservationGrace - 2*time.Second},
		{Name: "kafka-kill9", Serves: 1, At: 1500 * time.Millisecond, Fault: killKafka},
		{Name: "postgres-immediate", Serves: 1, At: 1500 * time.Millisecond, Fault: stopPostgres},
		{Name: "serve-sigstop", Serves: 2, At: 1500 * time.Millisecond, Fault: pauseServe},
		{Name: "consumer-kill9", Serves: 1, Consumer: true, At: 1500 * time.Millisecond, Fault: killConsumer},
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	return sleepUntil(ctx, time.Now().Add(d))
}

// killServe: kill -9 of the only serve mid-sale, restarted a second later.
func killServe(ctx context.Context, r *Run) error {
	in := r.Insts[0]
	r.Excuse(0, time.Now(), time.Time{})
	if err := in.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	return in.Start()
}

// killRedis1: kill -9 of Redis node 1 mid-sale, restarted from its
// append-only file a second later.
func killRedis1(ctx context.Context, r *Run) error {
	if _, err := r.Stack.Kill("redis1", syscall.SIGKILL); err != nil {
		return err
	}
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	return r.Stack.Start(ctx, "redis1")
}

// pauseRedis1: SIGSTOP of Redis node 1 mid-sale for 1.5 s, then SIGCONT.
// Reservations sent meanwhile wait in its sockets, time out in serve and
// run when it resumes: units taken with no request left to write their
// orders, which serve gives back without waiting for the reconciler.
func pauseRedis1(ctx context.Context, r *Run) error {
	if _, err := r.Stack.Kill("redis1", syscall.SIGSTOP); err != nil {
		return err
	}
	if err := sleep(ctx, 1500*time.Millisecond); err != nil {
		_, _ = r.Stack.Kill("redis1", syscall.SIGCONT)
		return err
	}
	_, err := r.Stack.Kill("redis1", syscall.SIGCONT)
	return err
}

// rollbackRedis1 is a failover to a lagging replica: a copy of node 1's
// data taken now, the sale running on for 3.5 s, node 1 killed and started
// again from the copy.
func rollbackRedis1(ctx context.Context, r *Run) error {
	dir := r.Stack.Redis1Dir()
	snap := filepath.Join(r.LogDir, r.Name+"-redis1-copy")
	if err := os.RemoveAll(snap); err != nil {
		return err
	}
	if err := os.MkdirAll(snap, 0o755); err != nil {
		return err
	}
	r.Logf("copy of %s/appendonlydir to %s", dir, snap)
	if err := cp(ctx, filepath.Join(dir, "appendonlydir"), snap); err != nil {
		return err
	}
	if err := sleep(ctx, 3500*time.Millisecond); err != nil {
		return err
	}
	if _, err := r.Stack.Kill("redis1", syscall.SIGKILL); err != nil {
		return err
	}
	r.Logf("replacing %s/appendonlydir with the copy taken 3.5 s earlier", dir)
	if err := os.RemoveAll(filepath.Join(dir, "appendonlydir")); err != nil {
		return err
	}
	if err := cp(ctx, filepath.Join(snap, "appendonlydir"), dir); err != nil {
		return err
	}
	return r.Stack.Start(ctx, "redis1")
}

func cp(ctx context.Context, from, to string) error {
	if out, err := exec.CommandContext(ctx, "cp", "-a", from, to).CombinedOutput(); err != nil {
		return fmt.Errorf("cp -a %s %s: %w: %s", from, to, err, out)
	}
	return nil
}

// killKafka: kill -9 of the broker, started again 10 s later.
func killKafka(ctx context.Context, r *Run) error {
	if _, err := r.Stack.Kill("kafka", syscall.SIGKILL); err != nil {
		return err
	}
	if err := sleep(ctx, 10*time.Second); err != nil {
		return err
	}
	return r.Stack.Start(ctx, "kafka")
}

// stopPostgres: an immediate stop (no checkpoint, crash recovery on
// start), started again 5 s later.
func stopPostgres(ctx context.Context, r *Run) error {
	if err := r.Stack.PostgresImmediateStop(ctx); err != nil {
		return err
	}
	if err := sleep(ctx, 5*time.Second); err != nil {
		return err
	}
	return r.Stack.Start(ctx, "postgres")
}

// pauseServe: SIGSTOP of one of two serve instances for longer than the
// relay lease, so that the other takes its shards over, then SIGCONT.
func pauseServe(ctx context.Context, r *Run) error {
	in := r.Insts[1]
	r.Excuse(1, time.Now(), time.Time{})
	if err := in.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	if err := sleep(ctx, RelayLeaseTTL+2*time.Second); err != nil {
		return err
	}
	return in.Signal(syscall.SIGCONT)
}

// killConsumer: kill -9 of the inventory consumer mid-batch (right after
// its ledger grew, while events flow), restarted a second later.
func killConsumer(ctx context.Context, r *Run) error {
	r.waitLedgerGrowing(ctx)
	if err := r.Consumer.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	return r.Consumer.Start()
}

// waitLedgerGrowing returns once the consumer is seen applying events (its
// ledger entries of the sale grew within 20 ms), or after 3 s.
func (r *Run) waitLedgerGrowing(ctx context.Context) {
	saleID, err := strconv.ParseInt(r.SaleID, 10, 64)
	if err != nil {
		return
	}
	b, err := OpenBooks(ctx, r.DBs[:1])
	if err != nil {
		return
	}
	defer b.Close()
	b.SaleID = saleID
	last := -1
	ok, _ := poll(ctx, 3*time.Second, 20*time.Millisecond, func() bool {
		m, err := b.Ledger(ctx)
		grew := err == nil && last >= 0 && len(m) > last
		if err == nil {
			last = len(m)
		}
		return grew
	})
	r.Logf("%s: consumer applying events: %t (%d ledger entries)", r.Name, ok, last)
}

package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"flashsale/auth"
)

// Suite is the whole fault suite: the private stack, the binary, the
// shape of every scenario's sale, and where it reports.
type Suite struct {
	Stack  *Stack
	Bin    string // bin/flashsale
	LogDir string // the processes' logs
	Secret string // signs the buyers' and the admin's tokens
	Only   string // run this scenario alone

	Stock, Buyers, Workers int
	Rate                   float64 // buyers arriving per second
	ClientTimeout, Budget  time.Duration
	RecoveryBound          time.Duration

	Out io.Writer // the scenario lines and breaches
	Err io.Writer // progress
	mu  sync.Mutex
}

// Logf prints a progress line (pids, signals, phases) with a timestamp.
func (s *Suite) Logf(format string, a ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.Err, "%s chaos: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
}

// Run starts the private stack, runs every scenario (or the one named by
// Only) and returns an error when any invariant was breached.
func (s *Suite) Run(ctx context.Context) error {
	scenarios := Scenarios()
	if s.Only != "" {
		scenarios = pick(scenarios, s.Only)
		if len(scenarios) == 0 {
			return fmt.Errorf("no scenario %q (one of %s)", s.Only, strings.Join(names(Scenarios()), ", "))
		}
	}
	s.Stack.Log = s.Logf
	s.Logf("starting the private stack STACK_NAME=%s", s.Stack.Name)
	if err := s.Stack.Up(ctx); err != nil {
		return err
	}
	if err := os.MkdirAll(s.LogDir, 0o755); err != nil {
		return err
	}
	if err := s.flushRedis(ctx); err != nil {
		return err
	}
	var failed []string
	for _, sc := range scenarios {
		res, err := s.runScenario(ctx, sc)
		if err != nil {
			fmt.Fprintf(s.Out, "chaos: %s ERROR %v\n", sc.Name, err)
			failed = append(failed, sc.Name)
			// Bring back whatever the failed scenario left down, so that
			// the next one starts from a whole stack.
			if err := s.Stack.Up(ctx); err != nil {
				return fmt.Errorf("repairing the stack after %s: %w", sc.Name, err)
			}
			continue
		}
		fmt.Fprintln(s.Out, Line(sc.Name, res))
		WriteBreaches(s.Out, sc.Name, res, 8)
		if !res.OK() {
			failed = append(failed, sc.Name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("scenarios with a breach or an error: %s", strings.Join(failed, ", "))
	}
	return nil
}

// flushRedis empties the private instance's three nodes, so that node 1's
// append-only file stays small and its restarts quick.
func (s *Suite) flushRedis(ctx context.Context) error {
	for _, addr := range s.Stack.RedisAddrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		err := c.FlushAll(ctx).Err()
		c.Close()
		if err != nil {
			return fmt.Errorf("FLUSHALL %s: %w", addr, err)
		}
	}
	return nil
}

func pick(ss []Scenario, name string) []Scenario {
	for _, sc := range ss {
		if sc.Name == name {
			return []Scenario{sc}
		}
	}
	return nil
}

func names(ss []Scenario) []string {
	out := make([]string, len(ss))
	for i, sc := range ss {
		out[i] = sc.Name
	}
	return out
}

// runScenario runs one scenario from fresh databases to the verdict.
func (s *Suite) runScenario(ctx context.Context, sc Scenario) (Result, error) {
	t0 := time.Now()
	id := fmt.Sprintf("%s-%d", sc.Name, t0.Unix())
	r := &Run{Suite: s, Scenario: sc, Prefix: "chaos-" + id, Topic: "chaos." + id}
	s.Logf("%s: fresh databases, prefix %s, topic %s", sc.Name, r.Prefix, r.Topic)
	if err := r.freshDatabases(ctx); err != nil {
		return Result{}, err
	}
	defer r.stopProcesses()
	if err := r.startProcesses(ctx); err != nil {
		return Result{}, err
	}
	if err := r.createSale(ctx); err != nil {
		return Result{}, err
	}
	s.Logf("%s: sale %s of %d units, %d buyers at %.0f/s", sc.Name, r.SaleID, s.Stock, s.Buyers, s.Rate)
	buyers, recovery, recovered, err := r.drive(ctx, id)
	if err != nil {
		return Result{}, err
	}
	f, err := r.gather(ctx, buyers)
	if err != nil {
		return Result{}, err
	}
	f.Recovery, f.Recovered, f.RecoveryBound = recovery, recovered, s.RecoveryBound
	res := Check(f)
	s.Logf("%s: done in %.0fs", sc.Name, time.Since(t0).Seconds())
	return res, nil
}

// drive runs the buyers and, at the scenario's moment, the fault; then it
// times how long every instance takes to be ready again.
func (r *Run) drive(ctx context.Context, runID string) ([]Buyer, time.Duration, bool, error) {
	urls := make([]string, len(r.Insts))
	for i, in := range r.Insts {
		urls[i] = in.URL
	}
	load := Load{Targets: urls, SaleID: r.SaleID, Buyers: r.Buyers, Rate: r.Rate, Workers: r.Workers,
		ClientTimeout: r.ClientTimeout, Budget: r.Budget, RunID: runID,
		Token: func(u string) (string, error) { return auth.Mint(r.Secret, u, false, time.Hour, time.Now()) }}
	var (
		recovery  time.Duration
		recovered bool
		faultErr  error
		wg        sync.WaitGroup
	)
	start := time.Now()
	wg.Go(func() {
		if r.Fault == nil || sleepUntil(ctx, start.Add(r.At)) != nil {
			return // a run without a fault (the scale-out test's burst)
		}
		r.Logf("%s: injecting the fault", r.Name)
		if faultErr = r.Fault(ctx, r); faultErr != nil {
			return
		}
		r.mu.Lock()
		r.undone = time.Now()
		r.mu.Unlock()
		if r.Balanced > 0 {
			wg.Go(func() { r.watchBalance(ctx) })
		}
		var err error
		recovery, err = WaitReady(ctx, r.Insts, 2*r.RecoveryBound)
		recovered = err == nil
		r.closeWindows(time.Now())
		r.Logf("%s: every /readyz 200 %.1fs after the fault was undone (err %v)", r.Name, recovery.Seconds(), err)
	})
	buyers, err := load.Run(ctx)
	r.Logf("%s: buyers done after %.1fs", r.Name, time.Since(start).Seconds())
	wg.Wait()
	return buyers, recovery, recovered, errors.Join(err, faultErr)
}

// adminCreate posts a sale as an admin and returns its id.
func (s *Suite) adminCreate(ctx context.Context, base, body string) (string, error) {
	tok, err := auth.Mint(s.Secret, "chaos-admin", true, time.Hour, time.Now())
	if err != nil {
		return "", err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/admin/sales", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var v struct {
		ID string `json:"id"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &v) != nil || v.ID == "" {
		return "", fmt.Errorf("create sale: %d %s", resp.StatusCode, b)
	}
	return v.ID, nil
}

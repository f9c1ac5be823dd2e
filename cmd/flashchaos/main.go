// Command flashchaos is the fault suite behind `make chaos`: on a private
// stack instance (scripts/stack.sh with STACK_NAME), it runs a flash sale
// per scenario, injects one fault with real signals, recovers, and checks
// every invariant in PostgreSQL, Redis, Kafka and the client's record. It
// prints one line per scenario and exits non-zero on any breach.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"flashsale/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "flashchaos:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("flashchaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := &chaos.Suite{Stack: &chaos.Stack{}, Out: stdout, Err: stderr}
	fs.StringVar(&s.Stack.Script, "stack", "scripts/stack.sh", "the stack script")
	fs.StringVar(&s.Stack.Name, "stack-name", "chaos", "STACK_NAME of the private instance (never the shared one)")
	fs.StringVar(&s.Bin, "bin", "bin/flashsale", "the flashsale binary")
	fs.StringVar(&s.LogDir, "log-dir", "", "where the processes' logs go (default .stack-NAME/log/suite)")
	fs.StringVar(&s.Secret, "jwt-secret", "chaos-suite-secret-0123456789abcdef", "secret of the suite's serve processes")
	fs.StringVar(&s.Only, "only", "", "run only this scenario")
	fs.IntVar(&s.Stock, "stock", 600, "units of each scenario's sale")
	fs.IntVar(&s.Buyers, "buyers", 2000, "buyers per scenario, one unit each")
	fs.Float64Var(&s.Rate, "rate", 250, "buyers arriving per second")
	fs.IntVar(&s.Workers, "workers", 64, "requests in flight at most")
	fs.DurationVar(&s.ClientTimeout, "client-timeout", 2*time.Second, "timeout of one attempt")
	fs.DurationVar(&s.Budget, "budget", 25*time.Second, "how long a buyer keeps retrying")
	fs.DurationVar(&s.RecoveryBound, "recovery-bound", 30*time.Second, "longest wait for every /readyz after a fault")
	down := fs.Bool("down", true, "stop the private stack at the end")
	timeout := fs.Duration("timeout", 9*time.Minute, "the whole suite's bound")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if s.Stack.Name == "" {
		return fmt.Errorf("--stack-name must name a private instance: the suite kills its processes")
	}
	if s.LogDir == "" {
		s.LogDir = ".stack-" + s.Stack.Name + "/log/suite"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	start := time.Now()
	err := s.Run(ctx)
	if *down {
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if derr := s.Stack.Down(dctx); derr != nil {
			fmt.Fprintln(stderr, "flashchaos: stack down:", derr)
		}
		dcancel()
	}
	fmt.Fprintf(stdout, "chaos: total %.0fs\n", time.Since(start).Seconds())
	return err
}

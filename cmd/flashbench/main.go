// Command flashbench is flashsale's load generator and verifier: it
// creates a sale through the admin API, sends a flash sale's burst of
// distinct buyers at it (open model with coordinated-omission-corrected
// latency, or closed model), then verifies that every unit was sold exactly
// once with every event delivered, and writes a JSON, Markdown and SVG
// report. With --ceilings it first measures this machine's ceilings with
// the same generator. See docs/flashbench.md.
//
//	flashbench [run] [flags]        the benchmark (flashbench --help lists the flags)
//	flashbench bare-server [ADDR]   a bare net/http JSON handler, the HTTP ceiling
//	flashbench ready URL            exit 0 when URL/readyz answers 200 (for scripts)
//	flashbench median DIR...        issue 12's targets over several runs' reports, with medians
//
// Exit status: 0 when every check passed, 1 when a check failed, 2 when the
// run could not be made.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "bare-server" {
		if err := bareServer(args[1:], stdout); err != nil {
			fmt.Fprintln(stderr, "flashbench bare-server:", err)
			return 2
		}
		return 0
	}
	if len(args) > 0 && args[0] == "median" {
		if err := median(args[1:], stdout); err != nil {
			fmt.Fprintln(stderr, "flashbench median:", err)
			return 2
		}
		return 0
	}
	if len(args) > 0 && args[0] == "ready" {
		if len(args) != 2 {
			fmt.Fprintln(stderr, "usage: flashbench ready URL")
			return 2
		}
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(strings.TrimRight(args[1], "/") + "/readyz")
		if err != nil {
			return 1
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 1
		}
		return 0
	}
	if len(args) > 0 && args[0] == "run" {
		args = args[1:]
	}
	opts, fs, err := parseOptions(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "flashbench:", err)
		return 2
	}
	if opts.CPUProfile != "" {
		f, err := os.Create(opts.CPUProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "flashbench: cpuprofile:", err)
			return 2
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	b, err := newBench(ctx, opts, fs, args, getenv, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "flashbench:", err)
		return 2
	}
	defer b.close()
	rep, err := b.run(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "flashbench:", err)
		return 2
	}
	printSummary(stdout, rep, b.outDir)
	if !rep.Passed {
		return 1
	}
	return 0
}

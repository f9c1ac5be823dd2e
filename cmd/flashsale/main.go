// Command flashsale runs the flash-sale order service and its tools:
// serve, consume, migrate and token.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"flashsale/app"
	"flashsale/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "flashsale:", err)
		}
		os.Exit(2)
	}
}

// env reads the process environment; tests pass their own.
type env func(string) string

const usage = `flashsale — takes orders in flash sales.

Usage:
  flashsale serve   [settings]                  run the HTTP API and its background loops
  flashsale consume inventory|notify [settings] apply the order events: keep the stock ledger, or post the webhooks
  flashsale relay   [settings]                  run only the outbox relay (serve runs one too unless --relay-enabled=false)
  flashsale migrate up|down|version [settings]  apply, revert or show the schema migrations
  flashsale token --sub ID [--admin] [--ttl D]  mint a development JWT (needs the jwt-secret setting)

Every setting is a flag and a FLASHSALE_* environment variable; flags win.
Each command reads only the settings it uses: flashsale COMMAND --help lists them.
Settings (serve reads them all):
`

func run(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return errors.New("a command is required")
		}
		return nil
	}
	switch args[0] {
	case "serve":
		// The HTTP API and its background loops, until ctx ends or a loop dies.
		return runProcess(ctx, "serve", config.Serve, args[1:], getenv, stderr,
			func(ctx context.Context, cfg *config.Config, log *slog.Logger) (process, error) {
				return app.New(ctx, cfg, log)
			})
	case "consume":
		return consumeCmd(ctx, args[1:], getenv, stderr)
	case "migrate":
		return migrateCmd(ctx, args[1:], getenv, stdout, stderr)
	case "relay":
		// Only the outbox relay: for deployments that keep it out of the API
		// instances, or run more relays than API instances.
		return runProcess(ctx, "relay", config.Relay, args[1:], getenv, stderr,
			func(ctx context.Context, cfg *config.Config, log *slog.Logger) (process, error) {
				return app.NewRelay(ctx, cfg, log)
			})
	case "token":
		return tokenCmd(args[1:], getenv, stdout, stderr)
	}
	printUsage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func printUsage(w io.Writer) {
	fs, _ := newFlagSet("flashsale", config.Serve, w)
	fmt.Fprint(w, usage)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

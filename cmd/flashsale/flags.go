package main

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"flashsale/config"
)

// newFlagSet returns a flag set carrying the settings cmd reads, so that
// its --help lists them.
func newFlagSet(name string, cmd config.Command, stderr io.Writer) (*flag.FlagSet, *config.Config) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs, config.RegisterFor(fs, cmd)
}

// load parses args over the environment into the settings cmd reads,
// validates them and logs them with the JSON logger it returns.
func load(name string, cmd config.Command, args []string, getenv env, stderr io.Writer) (*config.Config, *slog.Logger, error) {
	fs, cfg := newFlagSet(name, cmd, stderr)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if err := config.Load(fs, cfg, getenv); err != nil {
		return nil, nil, err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	log.Info("starting", "command", name, "config", cfg)
	return cfg, log, nil
}

// helpAsked says whether args ask for a command's help in place of the
// word that would follow the command.
func helpAsked(args []string) bool {
	return len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help")
}

// process is what app builds for a command: run until ctx ends, then closed.
type process interface {
	Run(ctx context.Context) error
	Close()
}

// builder builds a command's process from its settings.
type builder func(ctx context.Context, cfg *config.Config, log *slog.Logger) (process, error)

// runProcess loads the settings cmd reads from args and the environment,
// builds the command's process with build and runs it until ctx ends,
// closing it after.
func runProcess(ctx context.Context, name string, cmd config.Command, args []string, getenv env, stderr io.Writer, build builder) error {
	cfg, log, err := load("flashsale "+name, cmd, args, getenv, stderr)
	if err != nil {
		return err
	}
	p, err := build(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer p.Close()
	return p.Run(ctx)
}

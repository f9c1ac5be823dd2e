package main

import (
	"context"
	"errors"
	"io"

	"flashsale/app"
	"flashsale/config"
)

// migrateCmd applies, reverts or shows the schema migrations.
func migrateCmd(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if helpAsked(args) {
		_, _, err := load("flashsale migrate up|down|version", config.Migrate, args, getenv, stderr)
		return err
	}
	if len(args) == 0 {
		return errors.New("migrate needs up, down or version")
	}
	cfg, _, err := load("flashsale migrate "+args[0], config.Migrate, args[1:], getenv, stderr)
	if err != nil {
		return err
	}
	return app.Migrate(ctx, cfg, args[0], stdout)
}

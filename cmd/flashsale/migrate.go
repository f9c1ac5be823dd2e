package main

import (
	"context"
	"fmt"
	"io"

	"flashsale/dbschema"
	"flashsale/shard"
)

func migrateCmd(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs, cfg := newFlagSet("flashsale migrate up|down|version", stderr)
	if len(args) == 0 {
		return fmt.Errorf("migrate needs up, down or version")
	}
	verb := args[0]
	// The migrations need no secret; a placeholder keeps validation honest
	// about everything else.
	withSecret := func(k string) string {
		if v := getenv(k); v != "" || k != "FLASHSALE_JWT_SECRET" {
			return v
		}
		return "migrate-needs-no-secret"
	}
	if err := loadConfig(fs, cfg, args[1:], withSecret); err != nil {
		return err
	}
	m, err := shard.NewMap(cfg.Shards, len(cfg.DatabaseURLs))
	if err != nil {
		return err
	}
	mg := dbschema.New(cfg.DatabaseURLs, m)
	switch verb {
	case "up":
		return mg.Up(ctx)
	case "down":
		return mg.Down(ctx)
	case "version":
		vs, err := mg.Versions(ctx)
		for _, v := range vs {
			fmt.Fprintf(stdout, "%-12s version=%d dirty=%t\n", v.Target, v.Version, v.Dirty)
		}
		return err
	}
	return fmt.Errorf("migrate: unknown verb %q (up, down, version)", verb)
}

package app

import (
	"context"
	"fmt"
	"io"

	"flashsale/config"
	"flashsale/dbschema"
	"flashsale/shard"
)

// Migrate applies (up), reverts (down) or shows (version, on stdout) the
// schema migrations of every database (flashsale migrate).
func Migrate(ctx context.Context, cfg *config.Config, verb string, stdout io.Writer) error {
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

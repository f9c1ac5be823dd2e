// Package dbschema applies the embedded golang-migrate migrations: the global
// set on database 0, the database set in the schema "stock" of every
// database, and the shard set in every logical shard's schema.
package dbschema

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5" // registers the pgx5:// driver
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"

	"flashsale"
	"flashsale/shard"
)

// Version is the migration version of one target.
type Version struct {
	Target  string
	Version uint
	Dirty   bool
}

// Migrator applies migrations to the databases of a shard map.
type Migrator struct {
	urls []string
	m    shard.Map
}

// New returns a Migrator over the databases, in shard-map order.
func New(urls []string, m shard.Map) *Migrator {
	return &Migrator{urls: urls, m: m}
}

// Up applies every pending migration to database 0 and to every shard.
func (g *Migrator) Up(ctx context.Context) error {
	return g.each(ctx, func(mg *migrate.Migrate) error {
		if err := mg.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return err
		}
		return nil
	})
}

// Down reverts every migration on every shard and on database 0.
func (g *Migrator) Down(ctx context.Context) error {
	return g.each(ctx, func(mg *migrate.Migrate) error {
		if err := mg.Down(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return err
		}
		return nil
	})
}

// Versions reports the version of database 0 and of every shard.
func (g *Migrator) Versions(ctx context.Context) ([]Version, error) {
	var out []Version
	err := g.eachTarget(ctx, func(target string, mg *migrate.Migrate) error {
		v, dirty, err := mg.Version()
		if errors.Is(err, migrate.ErrNilVersion) {
			err = nil
		}
		out = append(out, Version{Target: target, Version: v, Dirty: dirty})
		return err
	})
	return out, err
}

func (g *Migrator) each(ctx context.Context, fn func(*migrate.Migrate) error) error {
	return g.eachTarget(ctx, func(_ string, mg *migrate.Migrate) error { return fn(mg) })
}

// StockSchema is the schema of every database that holds its share of each
// sale's stock (migrations/database).
const StockSchema = "stock"

// eachTarget runs fn on database 0's global set, then on every database's
// stock schema and every shard schema.
func (g *Migrator) eachTarget(ctx context.Context, fn func(target string, mg *migrate.Migrate) error) error {
	if err := g.run(g.urls[0], "global", "", "global", fn); err != nil {
		return err
	}
	for db, u := range g.urls {
		if err := createSchema(ctx, u, StockSchema); err != nil {
			return err
		}
		if err := g.run(u, "database", StockSchema, fmt.Sprintf("%s@%d", StockSchema, db), fn); err != nil {
			return err
		}
		for _, s := range g.m.OnDatabase(db) {
			if err := createSchema(ctx, u, s.Schema()); err != nil {
				return err
			}
			if err := g.run(u, "shard", s.Schema(), s.Schema(), fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func (g *Migrator) run(dbURL, set, schema, target string, fn func(string, *migrate.Migrate) error) error {
	sub, err := fs.Sub(flashsale.Migrations, "migrations/"+set)
	if err != nil {
		return err
	}
	src, err := iofs.New(sub, ".")
	if err != nil {
		return err
	}

	u, err := migrateURL(dbURL, schema)
	if err != nil {
		return err
	}
	mg, err := migrate.NewWithSourceInstance("iofs", src, u)
	if err != nil {
		return fmt.Errorf("dbschema: open %s: %w", target, err)
	}
	defer mg.Close()
	if err := fn(target, mg); err != nil {
		return fmt.Errorf("dbschema: %s: %w", target, err)
	}
	return nil
}

// migrateURL points golang-migrate's pgx driver at one schema: with
// search_path set, the shard migrations and their schema_migrations table
// land in that schema.
func migrateURL(dbURL, schema string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", err
	}
	u.Scheme = "pgx5"
	if schema != "" {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

func createSchema(ctx context.Context, dbURL, schema string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("dbschema: connect: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("dbschema: create schema %s: %w", schema, err)
	}
	return nil
}

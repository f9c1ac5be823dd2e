// Package testenv gives integration tests the real services started by
// scripts/stack.sh: addresses from the same FLASHSALE_* variables the
// service reads (loopback defaults), a fresh set of migrated databases per
// test, a private Redis key prefix per test, and cleanup through t.Cleanup.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"flashsale"
	"flashsale/config"
	"flashsale/dbschema"
	"flashsale/shard"
)

// JWTSecret signs the tokens tests mint.
const JWTSecret = "test-secret-0123456789abcdef"

// Config is the configuration of the real stack, read like the service
// reads it, with a private Redis prefix and fresh databases for this test.
// Shards defaults to 4 to keep per-test setup quick; tests that need the
// production layout pass their own.
func Config(t testing.TB, shards int) *config.Config {
	t.Helper()
	cfg := Base(t)
	cfg.Shards = shards
	cfg.MigrateOnStart = false
	cfg.ReconcileInterval = 0
	cfg.RelayEnabled = false // tests that relay ask for it, with a topic of their own
	cfg.ConsumersEnabled = false
	cfg.DatabaseURLs = Databases(t, cfg.DatabaseURLs, shards)
	cfg.RedisPrefix = RedisPrefix(t, cfg.RedisAddrs)
	return cfg
}

// Base is the configuration read from the environment as the service
// reads it, pointing at the shared stack itself.
func Base(t testing.TB) *config.Config {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg := config.Register(fs)
	getenv := func(k string) string {
		if k == config.EnvPrefix+"JWT_SECRET" {
			return JWTSecret
		}
		return os.Getenv(k)
	}
	if err := config.Load(fs, cfg, getenv); err != nil {
		t.Fatalf("testenv: config: %v", err)
	}
	return cfg
}

// Logger writes to the test log, so failures show what the service said.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

var templates sync.Map // key -> *templateOnce

type templateOnce struct {
	once sync.Once
	err  error
}

// Databases returns one fresh, migrated database per URL in base, each a
// copy of a template migrated once per schema version and shard count, and
// drops them when the test ends.
func Databases(t testing.TB, base []string, shards int) []string {
	t.Helper()
	ctx := context.Background()
	m, err := shard.NewMap(shards, len(base))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := fmt.Sprintf("fs_tmpl_%s_%d_%d", migrationsHash(), shards, len(base))
	v, _ := templates.LoadOrStore(tmpl, &templateOnce{})
	to := v.(*templateOnce)
	to.once.Do(func() { to.err = ensureTemplate(ctx, base, m, tmpl) })
	if to.err != nil {
		t.Fatalf("testenv: template: %v", to.err)
	}
	suffix := randHex(6)
	urls := make([]string, len(base))
	for i, u := range base {
		name := fmt.Sprintf("fs_t_%s_%d", suffix, i)
		exec(t, u, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s_%d", name, tmpl, i))
		urls[i] = withDB(t, u, name)
		t.Cleanup(func() { exec(t, u, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	}
	return urls
}

// ensureTemplate migrates the template databases once; an advisory lock
// serialises test binaries that race to build the same template.
func ensureTemplate(ctx context.Context, base []string, m shard.Map, tmpl string) error {
	conn, err := pgx.Connect(ctx, adminURL(base[0]))
	if err != nil {
		return fmt.Errorf("connect (is the stack up? run scripts/stack.sh up): %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", tmpl); err != nil {
		return err
	}
	defer conn.Exec(ctx, "SELECT pg_advisory_unlock(hashtext($1))", tmpl) //nolint:errcheck
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", tmpl+"_0").Scan(&exists); err != nil || exists {
		return err
	}
	urls := make([]string, len(base))
	for i, u := range base {
		name := fmt.Sprintf("%s_%d", tmpl, i)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+"_new WITH (FORCE)"); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+"_new"); err != nil {
			return err
		}
		p, _ := url.Parse(u)
		p.Path = "/" + name + "_new"
		urls[i] = p.String()
	}
	if err := dbschema.New(urls, m).Up(ctx); err != nil {
		return err
	}
	// Renamed only when complete: a crashed run never leaves a half-made template.
	for i := len(base) - 1; i >= 0; i-- {
		name := fmt.Sprintf("%s_%d", tmpl, i)
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+name+"_new RENAME TO "+name); err != nil {
			return err
		}
	}
	return nil
}

// migrationsHash names the schema version, so a changed migration gets a
// new template.
func migrationsHash() string {
	h := sha256.New()
	_ = fs.WalkDir(flashsale.Migrations, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := flashsale.Migrations.ReadFile(p)
			h.Write([]byte(p))
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:10]
}

func exec(t testing.TB, base, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL(base))
	if err != nil {
		t.Fatalf("testenv: connect (is the stack up? run scripts/stack.sh up): %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("testenv: %s: %v", sql, err)
	}
}

func adminURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	p.Path = "/postgres"
	return p.String()
}

func withDB(t testing.TB, u, name string) string {
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	p.Path = "/" + name
	return p.String()
}

// RedisPrefix returns a key prefix private to the test and deletes its
// keys from every node afterwards.
func RedisPrefix(t testing.TB, addrs []string) string {
	prefix := "t" + randHex(6)
	t.Cleanup(func() {
		ctx := context.Background()
		for _, a := range addrs {
			c := redis.NewClient(&redis.Options{Addr: a})
			unlinkPrefix(ctx, c, prefix)
			_ = c.Close()
		}
	})
	return prefix
}

// unlinkPrefix unlinks the keys under prefix a page of the scan at a time:
// one round trip per key made a node holding a few million keys (after
// make bench) a matter of seconds per test.
func unlinkPrefix(ctx context.Context, c *redis.Client, prefix string) {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, prefix+"*", 10000).Result()
		if err != nil {
			return
		}
		if len(keys) > 0 {
			c.Unlink(ctx, keys...)
		}
		if cursor = next; cursor == 0 {
			return
		}
	}
}

// Redis returns a client to node i (0-based), closed after the test.
func Redis(t testing.TB, cfg *config.Config, i int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: cfg.RedisAddrs[i]})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Pools opens one pool per database of cfg, closed after the test.
func Pools(t testing.TB, cfg *config.Config) []*pgxpool.Pool {
	t.Helper()
	var pools []*pgxpool.Pool
	for _, u := range cfg.DatabaseURLs {
		p, err := pgxpool.New(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		pools = append(pools, p)
	}
	return pools
}

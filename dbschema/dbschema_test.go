package dbschema_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"flashsale/dbschema"
	"flashsale/internal/testenv"
	"flashsale/shard"
)

// TestUpDownUp applies, reverts and re-applies every migration on every
// database of a two-database, sixteen-shard layout.
func TestUpDownUp(t *testing.T) {
	ctx := context.Background()
	urls := testenv.Databases(t, testenv.Base(t).DatabaseURLs, 16) // already migrated once from the template
	m, err := shard.NewMap(16, len(urls))
	if err != nil {
		t.Fatal(err)
	}
	mg := dbschema.New(urls, m)
	if err := mg.Up(ctx); err != nil {
		t.Fatalf("up on a migrated database must be a no-op: %v", err)
	}
	if err := mg.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countTables(t, urls, "orders"); n != 0 {
		t.Fatalf("%d orders tables survive down", n)
	}
	if err := mg.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countTables(t, urls, "orders"); n != 16 {
		t.Fatalf("%d orders tables after up, want 16", n)
	}
	if n := countTables(t, urls, "outbox"); n != 16 {
		t.Fatalf("%d outbox tables after up, want 16", n)
	}
	vs, err := mg.Versions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Version == 0 || v.Dirty {
			t.Errorf("%s: version %d dirty %t", v.Target, v.Version, v.Dirty)
		}
	}
	if want := 1 + len(urls) + 16; len(vs) != want {
		t.Errorf("%d targets, want %d: global, a stock schema per database, 16 shards", len(vs), want)
	}
}

func countTables(t *testing.T, urls []string, name string) int {
	t.Helper()
	n := 0
	for _, u := range urls {
		conn, err := pgx.Connect(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		var c int
		err = conn.QueryRow(context.Background(),
			`SELECT count(*) FROM information_schema.tables WHERE table_name = $1 AND table_schema LIKE 'shard\_%'`, name).Scan(&c)
		conn.Close(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n += c
	}
	return n
}

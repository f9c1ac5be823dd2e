// Package flashsale embeds the SQL the service runs: the migrations and the
// queries, kept as plain .sql files so that they can be read, linted and run
// by hand.
package flashsale

import "embed"

// Migrations holds migrations/global (database 0), migrations/database
// (every database's stock schema) and migrations/shard (each logical shard's
// schema) as golang-migrate up/down pairs.
//
//go:embed migrations/global/*.sql migrations/database/*.sql migrations/shard/*.sql
var Migrations embed.FS

// Queries holds the queries in sql/, read once at start.
//
//go:embed sql/*.sql
var Queries embed.FS

// Query returns the text of sql/NAME.sql. The set is fixed at build time,
// so a missing name is a programming error that every test run catches.
func Query(name string) string {
	b, err := Queries.ReadFile("sql/" + name + ".sql")
	if err != nil {
		panic("flashsale: no query sql/" + name + ".sql")
	}
	return string(b)
}

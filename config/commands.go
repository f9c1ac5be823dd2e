package config

import "slices"

// Command is a flashsale subcommand; each reads and validates only the
// settings it uses, so that a tool needs no secret it never uses.
type Command string

// The subcommands that read settings (token reads only the JWT secret,
// with flags of its own).
const (
	Serve   Command = "serve"
	Relay   Command = "relay"
	Consume Command = "consume"
	Migrate Command = "migrate"
)

// The settings every command that talks to the databases reads.
var (
	databaseSettings = []string{"database-urls", "shards", "db-max-conns", "db-connect-timeout", "db-statement-timeout",
		"migrate-on-start", "log-level", "debug-addr"}
	kafkaSettings = []string{"kafka-brokers", "kafka-topic"}
)

// reads lists the settings of each command but serve, which reads them all.
var reads = map[Command][]string{
	Migrate: {"database-urls", "shards", "log-level"},
	Relay: slices.Concat(databaseSettings, kafkaSettings, []string{"redis-addrs", "redis-prefix",
		"kafka-partitions", "kafka-replication", "relay-batch", "relay-lease-ttl", "outbox-retention"}),
	Consume: slices.Concat(databaseSettings, kafkaSettings, []string{"shutdown-timeout", "consumer-max-attempts", "consumer-batch",
		"consumer-group-prefix", "dead-letter-topic", "webhook-url", "webhook-secret", "webhook-timeout", "inbox-retention"}),
}

// Reads says whether the command reads the named setting.
func (cmd Command) Reads(name string) bool {
	names, ok := reads[cmd]
	return !ok || slices.Contains(names, name)
}

// settingsOf are the settings cmd reads, in the order --help lists them.
func settingsOf(cmd Command) []setting {
	var out []setting
	for _, s := range settings {
		if cmd.Reads(s.name) {
			out = append(out, s)
		}
	}
	return out
}

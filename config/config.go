// Package config holds the one typed configuration of flashsale: every
// setting is read from a FLASHSALE_* environment variable, may be overridden
// by a command-line flag, has a stated default and is validated before
// anything starts.
package config

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix prefixes every environment variable flashsale reads.
const EnvPrefix = "FLASHSALE_"

// MaxCommitWorkers bounds commit-workers: each of a database's group
// commit transactions in flight takes its units from an allotment slot of
// its own, and a database has orderpg.AllotSlots of them.
const MaxCommitWorkers = 4

// Config is every setting of the flashsale binary.
type Config struct {
	HTTPAddr          string
	DebugAddr         string
	DatabaseURLs      []string
	Shards            int
	DBMaxConns        int
	RedisAddrs        []string
	RedisPrefix       string
	StockRedisAddrs   []string // a Redis Cluster's nodes for the stock; empty: Redis node 1
	KafkaBrokers      []string
	KafkaTopic        string
	KafkaPartitions   int
	KafkaReplication  int
	RelayEnabled      bool
	RelayBatch        int
	RelayLeaseTTL     time.Duration
	OutboxRetention   time.Duration
	JWTSecret         string
	PaymentWindow     time.Duration
	UserRate          int
	UserBurst         int
	IPRate            int
	IPBurst           int
	TrustedProxies    []netip.Prefix
	MaxInFlight       int
	CommitBatch       int
	CommitWorkers     int
	ReserveBatch      int
	CommitDeadline    time.Duration
	ReservationGrace  time.Duration
	ReconcileInterval time.Duration
	ExpiryInterval    time.Duration
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration
	MaxBodyBytes      int64
	MigrateOnStart    bool
	LogLevel          slog.Level
	AccessLog         string // off, sampled or all

	ConsumersEnabled    bool
	ConsumerMaxAttempts int
	ConsumerBatch       int
	ConsumerGroupPrefix string
	DeadLetterTopic     string
	WebhookURL          string
	WebhookSecret       string
	WebhookTimeout      time.Duration
	InboxRetention      time.Duration

	// Failing fast while a dependency is down.
	DBConnectTimeout   time.Duration
	DBStatementTimeout time.Duration
	RedisDialTimeout   time.Duration
	RedisTimeout       time.Duration
	RedisRetries       int
	BreakerFailures    int
	BreakerSpread      time.Duration
	BreakerOpen        time.Duration
	BreakerProbes      int

	cmd Command           // the command the settings are read for
	raw map[string]string // the text each setting was parsed from, for logging
}

// setting binds one field of Config to its flag, environment variable,
// default and help text.
type setting struct {
	name   string
	def    string
	usage  string
	secret bool
	set    func(c *Config, v string) error
}

// Env is the environment variable that carries the setting.
func (s setting) Env() string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

// Defaults are chosen for the local stack started by scripts/stack.sh.
var settings = []setting{
	{"http-addr", ":8080", "address the HTTP API listens on", false, func(c *Config, v string) error { c.HTTPAddr = v; return nil }},
	{"debug-addr", "", "address of the debug listener: Prometheus metrics on /metrics, net/http/pprof under /debug/pprof/; empty: off; keep it on loopback", false, func(c *Config, v string) error { c.DebugAddr = v; return nil }},
	{"database-urls", "postgres://flashsale@127.0.0.1:55432/flashsale_0?sslmode=disable,postgres://flashsale@127.0.0.1:55432/flashsale_1?sslmode=disable",
		"comma-separated PostgreSQL URLs; logical shard i lives on database i mod len; database 0 also holds the sales", true, setStrings(func(c *Config) *[]string { return &c.DatabaseURLs })},
	{"shards", "16", "number of logical order shards (fixed once the schema exists, 1-1024)", false, setInt(func(c *Config) *int { return &c.Shards })},
	{"db-max-conns", "16", "connections per PostgreSQL pool", false, setInt(func(c *Config) *int { return &c.DBMaxConns })},
	{"db-connect-timeout", "2s", "longest a new PostgreSQL connection may take to open; a database that does not answer fails within it", false, setDuration(func(c *Config) *time.Duration { return &c.DBConnectTimeout })},
	{"db-statement-timeout", "5s", "PostgreSQL statement_timeout of the service's connections, above what a group commit takes (0: none)", false, setDuration(func(c *Config) *time.Duration { return &c.DBStatementTimeout })},
	{"redis-addrs", "127.0.0.1:56379,127.0.0.1:56380,127.0.0.1:56381",
		"comma-separated Redis nodes; the first serves stock, rate limits and idempotency, all form the RedLock quorum", false, setStrings(func(c *Config) *[]string { return &c.RedisAddrs })},
	{"redis-prefix", "fs", "prefix of every Redis key, so that several deployments or tests share nodes", false, func(c *Config, v string) error { c.RedisPrefix = v; return nil }},
	{"redis-dial-timeout", "1s", "longest a new Redis connection may take to open (it is tried twice)", false, setDuration(func(c *Config) *time.Duration { return &c.RedisDialTimeout })},
	{"redis-timeout", "500ms", "read and write timeout of a Redis call; a paused node fails a pipelined reservation within about twice it (measured with go-redis v9.23)", false, setDuration(func(c *Config) *time.Duration { return &c.RedisTimeout })},
	{"redis-retries", "0", "times a Redis call that failed on the network is retried (each may cost another redis-timeout)", false, setInt(func(c *Config) *int { return &c.RedisRetries })},
	{"breaker-failures", "5", "consecutive infrastructure failures of a dependency (Redis node 1, a database) that open its circuit breaker", false, setInt(func(c *Config) *int { return &c.BreakerFailures })},
	{"breaker-spread", "100ms", "least time those failures must span, so that one failed batch (many orders, one round trip) does not open it", false, setDuration(func(c *Config) *time.Duration { return &c.BreakerSpread })},
	{"breaker-open", "1s", "how long an open circuit breaker answers 503 at once before letting probes through", false, setDuration(func(c *Config) *time.Duration { return &c.BreakerOpen })},
	{"breaker-probes", "3", "calls a half-open circuit breaker lets through; as many successes close it", false, setInt(func(c *Config) *int { return &c.BreakerProbes })},
	{"kafka-brokers", "127.0.0.1:59092", "comma-separated Kafka bootstrap brokers", false, setStrings(func(c *Config) *[]string { return &c.KafkaBrokers })},
	{"kafka-topic", "flashsale.orders", "topic the order events are published to", false, func(c *Config, v string) error { c.KafkaTopic = v; return nil }},
	{"kafka-partitions", "8", "partitions of the topic when flashsale creates it", false, setInt(func(c *Config) *int { return &c.KafkaPartitions })},
	{"kafka-replication", "1", "replication factor of the topic when flashsale creates it", false, setInt(func(c *Config) *int { return &c.KafkaReplication })},
	{"relay-enabled", "true", "run the outbox relay inside serve (flashsale relay runs it alone)", false, setBool(func(c *Config) *bool { return &c.RelayEnabled })},
	{"relay-batch", "500", "most outbox rows one relay loop publishes at once", false, setInt(func(c *Config) *int { return &c.RelayBatch })},
	{"relay-lease-ttl", "10s", "lease of a relay on a shard; a dead relay's shards move within it", false, setDuration(func(c *Config) *time.Duration { return &c.RelayLeaseTTL })},
	{"outbox-retention", "0s", "how long published outbox rows are kept in outbox_published for operators; 0 deletes them once Kafka has them (Kafka's log is the record), which costs PostgreSQL less", false, setDuration(func(c *Config) *time.Duration { return &c.OutboxRetention })},
	{"jwt-secret", "", "HS256 secret that signs buyer and admin tokens (required, at least 16 bytes)", true, func(c *Config, v string) error { c.JWTSecret = v; return nil }},
	{"payment-window", "15m", "time a buyer has to pay before the order expires", false, setDuration(func(c *Config) *time.Duration { return &c.PaymentWindow })},
	{"user-rate", "10", "order requests per second per buyer (GCRA)", false, setInt(func(c *Config) *int { return &c.UserRate })},
	{"user-burst", "20", "burst of order requests per buyer", false, setInt(func(c *Config) *int { return &c.UserBurst })},
	{"ip-rate", "2000", "requests per second per client IP (many buyers share one NAT)", false, setInt(func(c *Config) *int { return &c.IPRate })},
	{"ip-burst", "2000", "burst of requests per client IP", false, setInt(func(c *Config) *int { return &c.IPBurst })},
	{"trusted-proxies", "", "comma-separated CIDRs whose X-Forwarded-For is believed", false, setPrefixes},
	{"max-in-flight", "2048", "orders in flight per instance before new ones are shed with 503", false, setInt(func(c *Config) *int { return &c.MaxInFlight })},
	{"reserve-batch", "64", "most reservations sent to Redis in one round trip (1: one round trip per order; docs/benchmarks.md)", false, setInt(func(c *Config) *int { return &c.ReserveBatch })},
	{"commit-batch", "256", "most orders committed together in one PostgreSQL transaction (chosen by sweep, docs/benchmarks.md)", false, setInt(func(c *Config) *int { return &c.CommitBatch })},
	{"commit-workers", "1", "group commit transactions in flight per database, 1-4: fewer make bigger transactions, more overlap their commits (chosen by sweep, docs/benchmarks.md)", false, setInt(func(c *Config) *int { return &c.CommitWorkers })},
	{"commit-deadline", "10s", "an order whose reservation is older than this is not committed (the reconciler may already have returned its stock)", false, setDuration(func(c *Config) *time.Duration { return &c.CommitDeadline })},
	{"reservation-grace", "30s", "age after which the reconciler returns a reservation that has no order; must exceed commit-deadline", false, setDuration(func(c *Config) *time.Duration { return &c.ReservationGrace })},
	{"reconcile-interval", "30s", "how often every sale is reconciled (0 disables the periodic run)", false, setDuration(func(c *Config) *time.Duration { return &c.ReconcileInterval })},
	{"expiry-interval", "1s", "how often unpaid orders past their payment window are expired, and units of closed orders whose release was lost returned (0 disables the sweeper)", false, setDuration(func(c *Config) *time.Duration { return &c.ExpiryInterval })},
	{"read-header-timeout", "5s", "HTTP server ReadHeaderTimeout", false, setDuration(func(c *Config) *time.Duration { return &c.ReadHeaderTimeout })},
	{"read-timeout", "10s", "HTTP server ReadTimeout", false, setDuration(func(c *Config) *time.Duration { return &c.ReadTimeout })},
	{"write-timeout", "15s", "HTTP server WriteTimeout", false, setDuration(func(c *Config) *time.Duration { return &c.WriteTimeout })},
	{"idle-timeout", "120s", "HTTP server IdleTimeout", false, setDuration(func(c *Config) *time.Duration { return &c.IdleTimeout })},
	{"shutdown-timeout", "20s", "how long a graceful shutdown may take", false, setDuration(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
	{"max-body-bytes", "16384", "largest request body accepted", false, func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		c.MaxBodyBytes = n
		return err
	}},
	{"migrate-on-start", "true", "apply pending migrations when serve starts", false, setBool(func(c *Config) *bool { return &c.MigrateOnStart })},
	{"log-level", "info", "debug, info, warn or error", false, func(c *Config, v string) error { return c.LogLevel.UnmarshalText([]byte(v)) }},
	{"access-log", "sampled", "JSON access log line per request at info: off, sampled (every 5xx and 1 in 100 others) or all (cost measured in docs/operability.md)", false, func(c *Config, v string) error { c.AccessLog = v; return nil }},
	{"consumers-enabled", "true", "run the event consumers inside serve: the stock ledger, and the webhooks when webhook-url is set (flashsale consume runs one alone)", false, setBool(func(c *Config) *bool { return &c.ConsumersEnabled })},
	{"consumer-batch", "2048", "most events the stock ledger applies in one transaction when it is behind (the webhook sender takes one at a time)", false, setInt(func(c *Config) *int { return &c.ConsumerBatch })},
	{"consumer-max-attempts", "5", "attempts an event consumer makes at one message before it goes to the dead-letter topic", false, setInt(func(c *Config) *int { return &c.ConsumerMaxAttempts })},
	{"consumer-group-prefix", "flashsale", "consumer groups are named PREFIX-inventory and PREFIX-notify", false, func(c *Config, v string) error { c.ConsumerGroupPrefix = v; return nil }},
	{"dead-letter-topic", "flashsale.orders.dlq", "topic the event consumers write the messages they could not handle to", false, func(c *Config, v string) error { c.DeadLetterTopic = v; return nil }},
	{"webhook-url", "", "http(s) URL the notify consumer posts every order event to (required by consume notify)", false, func(c *Config, v string) error { c.WebhookURL = v; return nil }},
	{"webhook-secret", "", "Standard Webhooks secret that signs every webhook: whsec_ + base64 of 24-64 random bytes (required when webhook-url is set; make one with: echo \"whsec_$(openssl rand -base64 32)\")", true, func(c *Config, v string) error { c.WebhookSecret = v; return nil }},
	{"webhook-timeout", "5s", "timeout of one webhook request", false, setDuration(func(c *Config) *time.Duration { return &c.WebhookTimeout })},
	{"stock-redis-addrs", "", "comma-separated nodes of a Redis Cluster (any of them; the rest are discovered) that then holds the stock, per-buyer limits, rate limits and idempotency claims instead of node 1; the redis-addrs nodes stay the RedLock quorum and carry the live events", false, setStrings(func(c *Config) *[]string { return &c.StockRedisAddrs })},
	{"inbox-retention", "168h", "the event consumers delete their inbox rows older than this; keep it above the topic's retention, since an event redelivered after its row is gone is deduplicated only by its consumer's own tables", false, setDuration(func(c *Config) *time.Duration { return &c.InboxRetention })},
}

func setInt(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		*field(c) = n
		return err
	}
}

func setBool(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		*field(c) = b
		return err
	}
}

func setDuration(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		*field(c) = d
		return err
	}
}

func setStrings(field func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, v string) error {
		*field(c) = splitList(v)
		return nil
	}
}

func setPrefixes(c *Config, v string) error {
	c.TrustedProxies = nil
	for _, s := range splitList(v) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return err
		}
		c.TrustedProxies = append(c.TrustedProxies, p.Masked())
	}
	return nil
}

func splitList(v string) []string {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// settingValue adapts a setting to flag.Value so that flags override the
// environment through the same parser.
type settingValue struct {
	s   setting
	c   *Config
	cur string
}

func (v *settingValue) String() string { return v.cur }

func (v *settingValue) Set(s string) error {
	if err := v.s.set(v.c, s); err != nil {
		return err
	}
	v.cur = s
	v.c.remember(v.s.name, s)
	return nil
}

func (c *Config) remember(name, v string) {
	if c.raw == nil {
		c.raw = map[string]string{}
	}
	c.raw[name] = v
}

// Register adds every setting (those of serve) as a flag to fs and returns
// the Config the flags write into; call Load after fs.Parse.
func Register(fs *flag.FlagSet) *Config { return RegisterFor(fs, Serve) }

// RegisterFor adds the settings cmd reads as flags to fs and returns the
// Config the flags write into; call Load after fs.Parse. The settings cmd
// does not read stay at their zero values.
func RegisterFor(fs *flag.FlagSet, cmd Command) *Config {
	c := &Config{cmd: cmd}
	for _, s := range settingsOf(cmd) {
		def := s.def
		if s.secret && def != "" {
			def = maskList(s.name, def)
		}
		fs.Var(&settingValue{s: s, c: c}, s.name, fmt.Sprintf("%s (env %s, default %q)", s.usage, s.Env(), def))
	}
	return c
}

// Load fills every setting of the Config's command not given as a flag
// from the environment or its default, then validates them.
func Load(fs *flag.FlagSet, c *Config, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, s := range settingsOf(c.command()) {
		if given[s.name] {
			continue
		}
		v, src := s.def, "default"
		if e := getenv(s.Env()); e != "" {
			v, src = e, s.Env()
		}
		if err := s.set(c, v); err != nil {
			return fmt.Errorf("config: %s (%s=%q): %w", s.name, src, v, err)
		}
		c.remember(s.name, v)
	}
	return c.Validate()
}

// FromEnv returns the Config made of the environment and defaults alone.
func FromEnv() (*Config, error) {
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	c := Register(fs)
	return c, Load(fs, c, os.Getenv)
}

// command is the command the Config was registered for; a Config built
// by hand is serve's.
func (c *Config) command() Command {
	if c.cmd == "" {
		return Serve
	}
	return c.cmd
}

// Validate reports every setting of the Config's command whose value
// cannot work; the settings the command does not read are not checked.
func (c *Config) Validate() error {
	var errs []error
	bad := func(name, why string) {
		if c.command().Reads(name) {
			errs = append(errs, fmt.Errorf("config: %s: %s", name, why))
		}
	}
	if len(c.DatabaseURLs) == 0 {
		bad("database-urls", "at least one PostgreSQL URL is required")
	}
	for _, u := range c.DatabaseURLs {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "postgres" && p.Scheme != "postgresql") {
			bad("database-urls", "not a postgres:// URL: "+mask("database-urls", u))
		}
	}
	if c.Shards < 1 || c.Shards > 1024 {
		bad("shards", "must be 1-1024")
	}
	if c.Shards < len(c.DatabaseURLs) {
		bad("shards", "must be at least the number of databases")
	}
	if c.CommitWorkers > MaxCommitWorkers {
		bad("commit-workers", fmt.Sprintf("must be at most %d, the allotment slots of a database", MaxCommitWorkers))
	}
	if len(c.RedisAddrs) == 0 {
		bad("redis-addrs", "at least one Redis address is required")
	}
	if len(c.KafkaBrokers) == 0 {
		bad("kafka-brokers", "at least one broker is required")
	}
	if len(c.JWTSecret) < 16 {
		bad("jwt-secret", "must be set and at least 16 bytes")
	}
	positive := map[string]int{"db-max-conns": c.DBMaxConns, "user-rate": c.UserRate, "user-burst": c.UserBurst,
		"ip-rate": c.IPRate, "ip-burst": c.IPBurst, "max-in-flight": c.MaxInFlight, "commit-batch": c.CommitBatch, "commit-workers": c.CommitWorkers, "reserve-batch": c.ReserveBatch,
		"kafka-partitions": c.KafkaPartitions, "kafka-replication": c.KafkaReplication, "relay-batch": c.RelayBatch,
		"consumer-max-attempts": c.ConsumerMaxAttempts, "consumer-batch": c.ConsumerBatch, "breaker-failures": c.BreakerFailures, "breaker-probes": c.BreakerProbes}
	for _, s := range settingsOf(c.command()) {
		if n, ok := positive[s.name]; ok && n < 1 {
			bad(s.name, "must be at least 1")
		}
	}
	durations := map[string]time.Duration{"db-connect-timeout": c.DBConnectTimeout, "redis-dial-timeout": c.RedisDialTimeout,
		"redis-timeout": c.RedisTimeout, "breaker-open": c.BreakerOpen, "payment-window": c.PaymentWindow,
		"commit-deadline": c.CommitDeadline, "shutdown-timeout": c.ShutdownTimeout, "webhook-timeout": c.WebhookTimeout}
	for _, s := range settingsOf(c.command()) {
		if d, ok := durations[s.name]; ok && d <= 0 {
			bad(s.name, "must be positive")
		}
	}
	if c.DBStatementTimeout < 0 {
		bad("db-statement-timeout", "must not be negative")
	}
	if c.OutboxRetention < 0 {
		bad("outbox-retention", "must not be negative")
	}
	if c.RedisRetries < 0 {
		bad("redis-retries", "must not be negative")
	}
	if c.BreakerSpread < 0 {
		bad("breaker-spread", "must not be negative")
	}
	if c.RelayLeaseTTL < time.Second {
		bad("relay-lease-ttl", "must be at least 1s")
	}
	if c.ReservationGrace <= c.CommitDeadline {
		bad("reservation-grace", "must exceed commit-deadline, or the reconciler could return stock of an order still committing")
	}
	if c.MaxBodyBytes < 1024 {
		bad("max-body-bytes", "must be at least 1024")
	}
	if c.DeadLetterTopic == "" || c.DeadLetterTopic == c.KafkaTopic {
		bad("dead-letter-topic", "must be set and differ from kafka-topic")
	}
	if c.WebhookURL != "" {
		if u, err := url.Parse(c.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("webhook-url", "not an http(s) URL")
		}
		if !webhookSecret(c.WebhookSecret) {
			bad("webhook-secret", `must be "whsec_" + base64 of 24 to 64 random bytes when webhook-url is set (Standard Webhooks)`)
		}
	}
	if c.AccessLog != "off" && c.AccessLog != "sampled" && c.AccessLog != "all" {
		bad("access-log", "must be off, sampled or all")
	}
	if c.WebhookTimeout <= 0 {
		bad("webhook-timeout", "must be positive")
	}
	if c.InboxRetention <= 0 {
		bad("inbox-retention", "must be positive")
	}
	return errors.Join(errs...)
}

// webhookSecret says whether s is a Standard Webhooks secret of the size
// the spec recommends; a plain string is refused rather than used as raw
// key bytes, since receivers' libraries would base64-decode it into
// another key. (notify.ParseSecret decodes it; config checks it early so
// that a bad one stops the process at start.)
func webhookSecret(s string) bool {
	b64, ok := strings.CutPrefix(s, "whsec_")
	key, err := base64.StdEncoding.DecodeString(b64)
	return ok && err == nil && len(key) >= 24 && len(key) <= 64
}

// LogValue logs every setting once, with secrets masked.
func (c *Config) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(settings))
	for _, s := range settingsOf(c.command()) {
		v := c.raw[s.name]
		if s.secret && v != "" {
			v = maskList(s.name, v)
		}
		attrs = append(attrs, slog.String(s.name, v))
	}
	return slog.GroupValue(attrs...)
}

func maskList(name, v string) string {
	parts := splitList(v)
	for i, p := range parts {
		parts[i] = mask(name, p)
	}
	return strings.Join(parts, ",")
}

// mask hides the password of a URL, or the whole value when it is no URL.
func mask(name, v string) string {
	if name != "database-urls" {
		return "*****"
	}
	u, err := url.Parse(v)
	if err != nil {
		return "*****"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "*****")
	}
	return u.Redacted()
}

package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Options are flashbench's settings: each a flag, with FLASHBENCH_<NAME>
// in the environment as its default (flags win), so scripts/bench.sh can
// pass either through.
type Options struct {
	URL          string
	Model        string
	Rate         string
	RateFraction float64
	FallbackRate float64
	Ramp         time.Duration
	Duration     time.Duration
	Grace        time.Duration
	Workers      int
	VUs          int
	Think        time.Duration
	Conns        int
	ClientKind   string
	CPUProfile   string

	Buyers   int
	Stock    int
	Limit    int
	Quantity int

	Timeout  time.Duration
	Retries  int
	Backoff  time.Duration
	RetryCap time.Duration

	Ceilings      bool
	PhaseDuration time.Duration
	HTTPConc      int
	LuaConc       int
	InsertConc    int
	OrdersConc    int

	ServicePID    int
	DebugURL      string
	OffURL        string
	OffServicePID int
	Procs         multi

	SoakDuration time.Duration
	SoakRate     float64
	SoakWarmup   time.Duration
	Notes        multi

	Out           string
	DrainTimeout  time.Duration
	Ledger        string
	LedgerTimeout time.Duration
	LedgerGroup   string
	KafkaFrom     string
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return "FLASHBENCH_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseOptions parses args over the FLASHBENCH_* environment.
func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (*Options, *flag.FlagSet, error) {
	o := &Options{}
	fs := flag.NewFlagSet("flashbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	str := func(p *string, name, def, usage string) { fs.StringVar(p, name, def, usage) }
	dur := func(p *time.Duration, name string, def time.Duration, usage string) {
		fs.DurationVar(p, name, def, usage)
	}
	num := func(p *int, name string, def int, usage string) { fs.IntVar(p, name, def, usage) }

	str(&o.URL, "url", "http://127.0.0.1:8080", "base URL of the flashsale service")
	str(&o.Model, "model", "open", "open (constant arrival rate, ramp-up, CO-corrected) or closed (virtual users)")
	str(&o.Rate, "rate", "auto", "open model: arrivals per second at full rate; auto = --rate-fraction of the sold-out peak measured by --ceilings, else --fallback-rate")
	fs.Float64Var(&o.RateFraction, "rate-fraction", 0.8, "with --rate auto: fraction of the measured sold-out peak")
	fs.Float64Var(&o.FallbackRate, "fallback-rate", 20000, "with --rate auto when no peak was measured")
	dur(&o.Ramp, "ramp", 2*time.Second, "open model: linear ramp from 0 to the rate")
	dur(&o.Duration, "duration", 20*time.Second, "load at full rate after the ramp (closed model: the whole run)")
	dur(&o.Grace, "grace", 30*time.Second, "after the schedule, time outstanding requests get before they count as not sent")
	num(&o.Workers, "workers", 2048, "open model: concurrent senders (arrivals queue for one; latency still counts from the intended time)")
	num(&o.VUs, "vus", 256, "closed model: virtual users")
	dur(&o.Think, "think", 0, "closed model: pause between a user's requests")
	num(&o.Conns, "conns", 2048, "HTTP keep-alive connections to the service at most (MaxConnsPerHost); as many as --workers, so no arrival waits in the generator for a connection a winner holds while its commit runs")
	str(&o.ClientKind, "client", "raw", "raw (a lean HTTP/1.1 keep-alive client) or std (net/http, about 4x the CPU per request)")
	str(&o.CPUProfile, "cpuprofile", "", "write the generator's CPU profile of the whole run to this file")
	num(&o.Buyers, "buyers", 100_000, "distinct buyers, each with its own token")
	num(&o.Stock, "stock", 10_000, "units of the sale")
	num(&o.Limit, "limit", 1, "per-buyer limit of the sale")
	num(&o.Quantity, "quantity", 1, "units per order request")
	dur(&o.Timeout, "timeout", 2*time.Second, "timeout of one attempt")
	num(&o.Retries, "retries", 3, "retries of a request after a timeout, connection error, 5xx or idempotency-key-in-use, with the same Idempotency-Key")
	dur(&o.Backoff, "backoff", 50*time.Millisecond, "first wait before a retry (doubles; Retry-After wins)")
	dur(&o.RetryCap, "retry-cap", time.Second, "longest wait before a retry")
	fs.BoolVar(&o.Ceilings, "ceilings", false, "first measure this machine's ceilings (bare handler, Lua alone, order+outbox insert alone) and the service's peaks")
	dur(&o.PhaseDuration, "phase-duration", 4*time.Second, "length of each ceiling and peak measurement")
	num(&o.HTTPConc, "http-conc", 128, "concurrency of the bare-handler ceiling and the sold-out peak")
	num(&o.LuaConc, "lua-conc", 64, "concurrency of the Lua ceiling")
	num(&o.InsertConc, "insert-conc", 256, "concurrency of the insert ceiling")
	num(&o.OrdersConc, "orders-conc", 256, "concurrency of the service's order peak")
	num(&o.ServicePID, "service-pid", 0, "pid of flashsale serve, for its CPU and memory (0: not reported)")
	str(&o.DebugURL, "debug-url", "", "the service's debug listener (its --debug-addr): the group commit's latency from /metrics during the sale, serve's CPU profile by stage during the order peak (empty: neither)")
	str(&o.OffURL, "off-url", "", "a second flashsale serve with relay and consumers off, on stores of its own: its order peak is the baseline of the relay + consumers cost (empty: not measured)")
	num(&o.OffServicePID, "off-service-pid", 0, "pid of the --off-url service, for its CPU")
	dur(&o.SoakDuration, "soak-duration", 0, "soak instead of the flash sale: the order path in the open model at --rate-fraction of its closed peak for this long, judging serve's RSS (0: no soak)")
	fs.Float64Var(&o.SoakRate, "soak-rate", 0, "with --soak-duration: orders per second (0: --rate-fraction of the closed order peak, measured first)")
	dur(&o.SoakWarmup, "soak-warmup", time.Minute, "with --soak-duration: the RSS is judged after this warm-up")
	fs.Var(&o.Procs, "proc", "another process to report, name=pid; name=pid+ adds its child processes (PostgreSQL backends), name=pid+w1,w2 only those whose command line holds w1 or w2 (a database name); repeatable")
	fs.Var(&o.Notes, "note", "key=value written under machine in the report (versions...); repeatable")
	str(&o.Out, "out", "", "report directory (default bench-results/<timestamp>)")
	dur(&o.DrainTimeout, "drain-timeout", 60*time.Second, "how long to wait for every outbox row to be published")
	str(&o.Ledger, "ledger", "auto", "inventory ledger check: auto (when the ledger_entries table exists) or skip")
	dur(&o.LedgerTimeout, "ledger-timeout", 90*time.Second, "how long to wait for the ledger to record every order")
	str(&o.LedgerGroup, "ledger-group", "flashsale-inventory", "consumer group of the inventory ledger, for its lag")
	str(&o.KafkaFrom, "kafka-from", "run", "read the topic from the offsets before the sale existed (run) or from the first offset (start)")

	// Environment first, flags over it.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s=%q: %w", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return nil, fs, envErr
	}
	if err := fs.Parse(args); err != nil {
		return nil, fs, err
	}
	return o, fs, o.validate()
}

func (o *Options) validate() error {
	var bad []string
	if o.Model != "open" && o.Model != "closed" {
		bad = append(bad, "--model must be open or closed")
	}
	if o.Rate != "auto" {
		if r, err := strconv.ParseFloat(o.Rate, 64); err != nil || r <= 0 {
			bad = append(bad, "--rate must be auto or a positive number")
		}
	}
	if o.Buyers < 1 || o.Stock < 0 || o.Limit < 1 || o.Quantity < 1 || o.Quantity > o.Limit {
		bad = append(bad, "--buyers, --limit and --quantity must be positive, --stock not negative, --quantity at most --limit")
	}
	if o.Workers < 1 || o.VUs < 1 || o.Conns < 1 || o.Retries < 0 {
		bad = append(bad, "--workers, --vus and --conns must be positive, --retries not negative")
	}
	if o.Duration <= 0 || o.Timeout <= 0 {
		bad = append(bad, "--duration and --timeout must be positive")
	}
	if o.SoakDuration < 0 || o.SoakRate < 0 || o.SoakWarmup < 0 || (o.SoakDuration > 0 && o.SoakWarmup >= o.SoakDuration) {
		bad = append(bad, "--soak-duration, --soak-rate and --soak-warmup must not be negative, the warm-up shorter than the soak")
	}
	if o.ClientKind != "raw" && o.ClientKind != "std" {
		bad = append(bad, "--client must be raw or std")
	}
	if o.Ledger != "auto" && o.Ledger != "skip" {
		bad = append(bad, "--ledger must be auto or skip")
	}
	if o.KafkaFrom != "run" && o.KafkaFrom != "start" {
		bad = append(bad, "--kafka-from must be run or start")
	}
	for _, p := range o.Procs {
		if _, err := parseProc(p); err != nil {
			bad = append(bad, err.Error())
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}

// parseProc reads name=pid, name=pid+ (with the children) or
// name=pid+word,word (with the children whose command line holds a word).
func parseProc(s string) (w Watched, err error) {
	name, v, ok := strings.Cut(s, "=")
	num, words, tree := strings.Cut(v, "+")
	pid, perr := strconv.Atoi(num)
	if !ok || name == "" || perr != nil || pid <= 0 {
		return Watched{}, fmt.Errorf("--proc %q: want name=pid, name=pid+ or name=pid+word,word", s)
	}
	w = Watched{Name: name, PID: pid, Tree: tree}
	for _, x := range strings.Split(words, ",") {
		if x != "" {
			w.Match = append(w.Match, x)
		}
	}
	return w, nil
}

// settings lists every option with its value, for the report.
func settings(fs *flag.FlagSet) map[string]string {
	m := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { m[f.Name] = f.Value.String() })
	return m
}

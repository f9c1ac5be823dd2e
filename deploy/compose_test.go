// Package deploy_test keeps compose.yaml (the Docker Compose stack at the
// repository root) from rotting on machines that cannot run Docker: it loads
// the file with the Compose reference parser and checks its wiring. Loading
// only parses and validates; nothing is pulled, built or resolved.
package deploy_test

import (
	"flag"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"flashsale/config"
)

// repoRoot is the module root, one level above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	return root
}

// loadProject parses compose.yaml with env as the only environment (so the
// result does not depend on the shell running the test).
func loadProject(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	root := repoRoot(t)
	file := filepath.Join(root, "compose.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: b}},
		Environment: types.Mapping(env),
	}, func(o *loader.Options) { o.SetProjectName("flashsale", false) })
	if err != nil {
		t.Fatalf("load compose.yaml: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return s
}

// envOf is a service's environment with every variable set (compose-go
// models an unset one as nil).
func envOf(t *testing.T, s types.ServiceConfig) map[string]string {
	t.Helper()
	m := map[string]string{}
	for k, v := range s.Environment {
		if v == nil {
			t.Errorf("%s: environment %s has no value", s.Name, k)
			continue
		}
		m[k] = *v
	}
	return m
}

var (
	dataServices = []string{"postgres", "redis1", "redis2", "redis3", "kafka"}
	allServices  = append(slices.Clone(dataServices), "migrate", "flashsale")
)

func TestComposeServices(t *testing.T) {
	p := loadProject(t, nil)
	if p.Name != "flashsale" {
		t.Errorf("project name = %q, want flashsale", p.Name)
	}
	for _, name := range allServices {
		service(t, p, name)
	}
	images := map[string]string{
		"postgres": "postgres:15", "redis1": "redis:7", "redis2": "redis:7", "redis3": "redis:7",
		"kafka": "apache/kafka:4.1.2",
	}
	for name, want := range images {
		if got := service(t, p, name).Image; got != want {
			t.Errorf("%s: image = %q, want %q", name, got, want)
		}
	}
}

func TestComposeHealthchecks(t *testing.T) {
	p := loadProject(t, nil)
	// A word every service's probe must mention, so that it probes the right thing.
	want := map[string]string{
		"postgres":  "pg_isready",
		"redis1":    "redis-cli ping",
		"redis2":    "redis-cli ping",
		"redis3":    "redis-cli ping",
		"kafka":     "/opt/kafka/bin/kafka-topics.sh --bootstrap-server localhost:9092 --list",
		"flashsale": "/readyz",
	}
	for name, word := range want {
		hc := service(t, p, name).HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] == "NONE" {
			t.Errorf("%s: no healthcheck (%+v)", name, hc)
			continue
		}
		if cmd := strings.Join(hc.Test[1:], " "); !strings.Contains(cmd, word) {
			t.Errorf("%s: healthcheck %q does not mention %q", name, cmd, word)
		}
		if hc.Interval == nil || hc.Retries == nil || *hc.Retries == 0 {
			t.Errorf("%s: healthcheck needs an interval and retries", name)
		}
	}
	// The service is probed on the port it listens on.
	fs := service(t, p, "flashsale")
	_, port, err := net.SplitHostPort(envOf(t, fs)["FLASHSALE_HTTP_ADDR"])
	if err != nil {
		t.Fatalf("flashsale: FLASHSALE_HTTP_ADDR: %v", err)
	}
	if probe := strings.Join(fs.HealthCheck.Test, " "); !strings.Contains(probe, "127.0.0.1:"+port+"/readyz") {
		t.Errorf("flashsale: healthcheck %q does not probe port %s", probe, port)
	}
	published := false
	for _, pc := range fs.Ports {
		published = published || (pc.Target == 8080 && pc.Published == "8080" && (pc.Protocol == "" || pc.Protocol == "tcp"))
	}
	if port != "8080" || !published {
		t.Errorf("flashsale: want 8080 published and listened on, got addr port %s, ports %+v", port, fs.Ports)
	}
}

func TestComposeDependencies(t *testing.T) {
	p := loadProject(t, nil)
	want := map[string]map[string]string{
		"migrate": {"postgres": types.ServiceConditionHealthy},
		"flashsale": {
			"migrate":  types.ServiceConditionCompletedSuccessfully,
			"postgres": types.ServiceConditionHealthy,
			"redis1":   types.ServiceConditionHealthy,
			"redis2":   types.ServiceConditionHealthy,
			"redis3":   types.ServiceConditionHealthy,
			"kafka":    types.ServiceConditionHealthy,
		},
	}
	for name, deps := range want {
		s := service(t, p, name)
		for dep, cond := range deps {
			d, ok := s.DependsOn[dep]
			if !ok {
				t.Errorf("%s: does not depend on %s", name, dep)
				continue
			}
			if d.Condition != cond {
				t.Errorf("%s: depends on %s with condition %q, want %q", name, dep, d.Condition, cond)
			}
		}
	}
	m := service(t, p, "migrate")
	if got := []string(m.Command); !slices.Equal(got, []string{"migrate", "up"}) {
		t.Errorf("migrate: command = %q, want [migrate up]", got)
	}
	if m.Restart != types.RestartPolicyNo {
		t.Errorf("migrate: restart = %q, want %q (one-shot)", m.Restart, types.RestartPolicyNo)
	}
	if got := []string(service(t, p, "flashsale").Command); !slices.Equal(got, []string{"serve"}) {
		t.Errorf("flashsale: command = %q, want [serve]", got)
	}
}

func TestComposeBuildsFromDockerfile(t *testing.T) {
	p := loadProject(t, nil)
	root := repoRoot(t)
	for _, name := range []string{"migrate", "flashsale"} {
		s := service(t, p, name)
		if s.Build == nil {
			t.Errorf("%s: not built", name)
			continue
		}
		if filepath.Clean(s.Build.Context) != root {
			t.Errorf("%s: build context = %q, want the repository root %q", name, s.Build.Context, root)
		}
		df := s.Build.Dockerfile
		if df == "" {
			df = "Dockerfile"
		}
		if !filepath.IsAbs(df) {
			df = filepath.Join(s.Build.Context, df)
		}
		if df != filepath.Join(root, "Dockerfile") {
			t.Errorf("%s: dockerfile = %q, want the repository's Dockerfile", name, df)
		}
	}

	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, re := range []string{
		`(?m)^FROM golang:1\.26\S* AS build`,
		`(?m)CGO_ENABLED=0 go build -trimpath .*-o /out/flashsale \./cmd/flashsale\s*$`,
		`(?m)^FROM alpine:3\.20\s*$`,
		`(?m)^COPY --from=build /out/flashsale /usr/local/bin/flashsale\s*$`,
		`(?m)^USER [1-9]`,
		`(?m)^ENTRYPOINT \["/usr/local/bin/flashsale"\]\s*$`,
		`(?m)^CMD \["serve"\]\s*$`,
		`(?m)^EXPOSE 8080\s*$`,
	} {
		if !regexp.MustCompile(re).MatchString(df) {
			t.Errorf("Dockerfile: no line matching %s", re)
		}
	}
	if st, err := os.Stat(filepath.Join(root, "cmd", "flashsale", "main.go")); err != nil || st.IsDir() {
		t.Errorf("Dockerfile builds ./cmd/flashsale, which is missing: %v", err)
	}
	di, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ign := range []string{".git", ".stack", "bin"} {
		if !slices.Contains(strings.Fields(string(di)), ign) {
			t.Errorf(".dockerignore does not ignore %s", ign)
		}
	}
}

// TestComposeEnvNamesServices parses the addresses the service is given and
// checks each names a service of the right kind on its container port.
func TestComposeEnvNamesServices(t *testing.T) {
	p := loadProject(t, nil)
	root := repoRoot(t)
	fsEnv := envOf(t, service(t, p, "flashsale"))
	imageOf := func(host string) string {
		s, err := p.GetService(host)
		if err != nil {
			t.Errorf("address names %q, which is not a service of compose.yaml", host)
			return ""
		}
		return s.Image
	}

	// PostgreSQL: every URL on the postgres service, distinct databases, each
	// created by the init script that service runs.
	urls := strings.Split(fsEnv["FLASHSALE_DATABASE_URLS"], ",")
	if len(urls) != 2 {
		t.Errorf("FLASHSALE_DATABASE_URLS has %d URLs, want 2", len(urls))
	}
	initSQL := readInitSQL(t, service(t, p, "postgres"), root)
	var dbs []string
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			t.Errorf("FLASHSALE_DATABASE_URLS: %v", err)
			continue
		}
		if u.Scheme != "postgres" || u.Port() != "5432" || u.User.Username() != "flashsale" {
			t.Errorf("database URL %q: want postgres://flashsale@HOST:5432/...", raw)
		}
		if img := imageOf(u.Hostname()); !strings.HasPrefix(img, "postgres:") {
			t.Errorf("database URL %q: host %q runs %q, not postgres", raw, u.Hostname(), img)
		}
		db := strings.TrimPrefix(u.Path, "/")
		dbs = append(dbs, db)
		if !regexp.MustCompile(`(?i)CREATE DATABASE\s+` + regexp.QuoteMeta(db) + `\b`).MatchString(initSQL) {
			t.Errorf("database %q is not created by deploy/compose/initdb.sql", db)
		}
	}
	if !slices.Equal(dbs, []string{"flashsale_0", "flashsale_1"}) {
		t.Errorf("databases = %q, want [flashsale_0 flashsale_1]", dbs)
	}
	if pg := envOf(t, service(t, p, "postgres")); pg["POSTGRES_USER"] != "flashsale" || pg["POSTGRES_HOST_AUTH_METHOD"] != "trust" {
		t.Errorf("postgres: environment %v, want POSTGRES_USER=flashsale and trust auth", pg)
	}
	if got := envOf(t, service(t, p, "migrate"))["FLASHSALE_DATABASE_URLS"]; got != fsEnv["FLASHSALE_DATABASE_URLS"] {
		t.Errorf("migrate and flashsale disagree on FLASHSALE_DATABASE_URLS: %q vs %q", got, fsEnv["FLASHSALE_DATABASE_URLS"])
	}

	// Redis: three distinct redis services on 6379.
	var redisHosts []string
	for _, a := range strings.Split(fsEnv["FLASHSALE_REDIS_ADDRS"], ",") {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Errorf("FLASHSALE_REDIS_ADDRS: %v", err)
			continue
		}
		if port != "6379" {
			t.Errorf("redis address %q: want port 6379", a)
		}
		if img := imageOf(host); !strings.HasPrefix(img, "redis:") {
			t.Errorf("redis address %q: host runs %q, not redis", a, img)
		}
		redisHosts = append(redisHosts, host)
	}
	if !slices.Equal(redisHosts, []string{"redis1", "redis2", "redis3"}) {
		t.Errorf("FLASHSALE_REDIS_ADDRS hosts = %q, want [redis1 redis2 redis3] in that order (node 1 holds the stock)", redisHosts)
	}

	// Kafka: the broker address is the one the broker advertises.
	brokers := strings.Split(fsEnv["FLASHSALE_KAFKA_BROKERS"], ",")
	kEnv := envOf(t, service(t, p, "kafka"))
	for _, b := range brokers {
		host, _, err := net.SplitHostPort(b)
		if err != nil {
			t.Errorf("FLASHSALE_KAFKA_BROKERS: %v", err)
			continue
		}
		if img := imageOf(host); !strings.HasPrefix(img, "apache/kafka:") {
			t.Errorf("kafka broker %q: host runs %q, not kafka", b, img)
		}
		if !slices.Contains(strings.Split(kEnv["KAFKA_ADVERTISED_LISTENERS"], ","), "PLAINTEXT://"+b) {
			t.Errorf("kafka broker %q is not advertised (KAFKA_ADVERTISED_LISTENERS=%q)", b, kEnv["KAFKA_ADVERTISED_LISTENERS"])
		}
	}
	if len(brokers) != 1 || brokers[0] != "kafka:9092" {
		t.Errorf("FLASHSALE_KAFKA_BROKERS = %q, want kafka:9092", brokers)
	}
}

func readInitSQL(t *testing.T, pg types.ServiceConfig, root string) string {
	t.Helper()
	for _, v := range pg.Volumes {
		if v.Type == types.VolumeTypeBind && strings.HasPrefix(v.Target, "/docker-entrypoint-initdb.d/") {
			if want := filepath.Join(root, "deploy", "compose", "initdb.sql"); v.Source != want {
				t.Errorf("postgres: init script mounted from %q, want %q", v.Source, want)
			}
			b, err := os.ReadFile(v.Source)
			if err != nil {
				t.Fatalf("postgres: init script: %v", err)
			}
			return string(b)
		}
	}
	t.Fatal("postgres: no init script mounted into /docker-entrypoint-initdb.d/")
	return ""
}

// TestComposeEnvIsValidConfig runs the service's and migrate's environment
// through the real configuration loader: every FLASHSALE_* name must be a
// setting and every value must parse and validate.
func TestComposeEnvIsValidConfig(t *testing.T) {
	p := loadProject(t, nil)
	fs := flag.NewFlagSet("compose", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config.Register(fs)
	known := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		known[config.EnvPrefix+strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))] = true
	})
	for name, cmd := range map[string]config.Command{"migrate": config.Migrate, "flashsale": config.Serve} {
		env := envOf(t, service(t, p, name))
		for k := range env {
			if strings.HasPrefix(k, config.EnvPrefix) && !known[k] {
				t.Errorf("%s: %s is not a flashsale setting", name, k)
			}
		}
		getenv := func(k string) string { return env[k] }
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		c := config.RegisterFor(fs, cmd)
		if err := config.Load(fs, c, getenv); err != nil {
			t.Errorf("%s: environment is not a valid config: %v", name, err)
		}
	}
}

func TestComposeJWTSecret(t *testing.T) {
	def := envOf(t, service(t, loadProject(t, nil), "flashsale"))["FLASHSALE_JWT_SECRET"]
	if def != "dev-secret-change-me-0123456789" {
		t.Errorf("default FLASHSALE_JWT_SECRET = %q", def)
	}
	const mine = "from-the-shell-0123456789abcdef"
	got := envOf(t, service(t, loadProject(t, map[string]string{"FLASHSALE_JWT_SECRET": mine}), "flashsale"))["FLASHSALE_JWT_SECRET"]
	if got != mine {
		t.Errorf("FLASHSALE_JWT_SECRET from the environment: got %q, want %q", got, mine)
	}
}

// TestComposeRedisDistinct: three separate servers, not one reached thrice.
func TestComposeRedisDistinct(t *testing.T) {
	p := loadProject(t, nil)
	seen := map[string]string{}
	for _, name := range []string{"redis1", "redis2", "redis3"} {
		s := service(t, p, name)
		if s.NetworkMode != "" || s.Extends != nil || s.Scale != nil && *s.Scale != 1 {
			t.Errorf("%s: must be its own single container (network_mode %q, extends %v)", name, s.NetworkMode, s.Extends)
		}
		if s.ContainerName != "" {
			if other, dup := seen["container:"+s.ContainerName]; dup {
				t.Errorf("%s and %s share container_name %q", name, other, s.ContainerName)
			}
			seen["container:"+s.ContainerName] = name
		}
		for _, v := range s.Volumes {
			if other, dup := seen["volume:"+v.Source]; dup && v.Source != "" {
				t.Errorf("%s and %s share the volume %q", name, other, v.Source)
			}
			seen["volume:"+v.Source] = name
		}
		cmd := strings.Join(s.Command, " ")
		if aof := strings.Contains(cmd, "--appendonly yes"); aof != (name == "redis1") {
			t.Errorf("%s: command %q: want --appendonly yes on redis1 only", name, cmd)
		}
	}
}

// TestComposeKafka checks the KRaft single-node settings.
func TestComposeKafka(t *testing.T) {
	env := envOf(t, service(t, loadProject(t, nil), "kafka"))
	want := map[string]string{
		"KAFKA_NODE_ID":                                  "1",
		"KAFKA_PROCESS_ROLES":                            "broker,controller",
		"KAFKA_CONTROLLER_LISTENER_NAMES":                "CONTROLLER",
		"KAFKA_CONTROLLER_QUORUM_VOTERS":                 "1@kafka:9093",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
		"KAFKA_DEFAULT_REPLICATION_FACTOR":               "1",
		"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("kafka: %s = %q, want %q", k, env[k], v)
		}
	}
	listeners := strings.Split(env["KAFKA_LISTENERS"], ",")
	for _, l := range []string{"PLAINTEXT://:9092", "CONTROLLER://:9093"} {
		if !slices.Contains(listeners, l) {
			t.Errorf("kafka: KAFKA_LISTENERS = %q lacks %s", env["KAFKA_LISTENERS"], l)
		}
	}
}

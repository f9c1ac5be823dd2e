package config

import (
	"bytes"
	"flag"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, args []string, env map[string]string) (*Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c := Register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return c, Load(fs, c, func(k string) string { return env[k] })
}

func TestFlagsOverrideEnvOverrideDefaults(t *testing.T) {
	c, err := load(t, []string{"--user-rate", "7"}, map[string]string{
		"FLASHSALE_JWT_SECRET": "0123456789abcdef", "FLASHSALE_USER_RATE": "3", "FLASHSALE_PAYMENT_WINDOW": "5m"})
	if err != nil {
		t.Fatal(err)
	}
	if c.UserRate != 7 || c.PaymentWindow != 5*time.Minute || c.UserBurst != 20 || c.Shards != 16 {
		t.Errorf("got rate %d window %s burst %d shards %d", c.UserRate, c.PaymentWindow, c.UserBurst, c.Shards)
	}
	if len(c.DatabaseURLs) != 2 || len(c.RedisAddrs) != 3 {
		t.Errorf("defaults: %v %v", c.DatabaseURLs, c.RedisAddrs)
	}
}

func TestLogValueMasksSecrets(t *testing.T) {
	c, err := load(t, nil, map[string]string{"FLASHSALE_JWT_SECRET": "super-secret-value-42",
		"FLASHSALE_DATABASE_URLS": "postgres://app:hunter2@db:5432/a,postgres://app:hunter2@db:5432/b"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	out := buf.String()
	if strings.Contains(out, "super-secret-value-42") || strings.Contains(out, "hunter2") {
		t.Fatalf("secret in log: %s", out)
	}
	if !strings.Contains(out, "db:5432/a") || !strings.Contains(out, "user-rate") {
		t.Errorf("log lost the non-secret settings: %s", out)
	}
}

func TestValidateNamesTheSetting(t *testing.T) {
	base := map[string]string{"FLASHSALE_JWT_SECRET": "0123456789abcdef"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--database-urls", "mysql://x"}, "database-urls"},
		{[]string{"--shards", "0"}, "shards"},
		{[]string{"--shards", "1", "--database-urls", "postgres://a/x,postgres://a/y"}, "shards"},
		{[]string{"--max-in-flight", "0"}, "max-in-flight"},
		{[]string{"--trusted-proxies", "10.0.0.0/33"}, "trusted-proxies"},
		{[]string{"--log-level", "loud"}, "log-level"},
		{[]string{"--max-body-bytes", "10"}, "max-body-bytes"},
		{[]string{"--breaker-failures", "0"}, "breaker-failures"},
		{[]string{"--breaker-open", "0s"}, "breaker-open"},
		{[]string{"--redis-timeout", "0s"}, "redis-timeout"},
		{[]string{"--db-statement-timeout", "-1s"}, "db-statement-timeout"},
		{[]string{"--breaker-spread", "-1ms"}, "breaker-spread"},
		{[]string{"--commit-workers", "0"}, "commit-workers"},
		{[]string{"--commit-workers", "5"}, "commit-workers"},
	} {
		_, err := load(t, tc.args, base)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}

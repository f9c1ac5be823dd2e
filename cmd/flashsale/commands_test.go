package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"flashsale/internal/testenv"
)

// TestEachCommandsHelpListsItsSettings: a command's --help lists the
// settings it reads and none it does not.
func TestEachCommandsHelpListsItsSettings(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		has, lack []string
	}{
		{[]string{"serve", "--help"}, []string{"-jwt-secret", "-user-rate", "-webhook-url"}, nil},
		{[]string{"consume", "--help"}, []string{"-consumer-max-attempts", "-webhook-url", "-database-urls"}, []string{"-jwt-secret", "-redis-addrs"}},
		{[]string{"consume", "inventory", "--help"}, []string{"-dead-letter-topic"}, []string{"-jwt-secret", "-http-addr"}},
		{[]string{"relay", "--help"}, []string{"-relay-batch", "-redis-addrs"}, []string{"-jwt-secret", "-webhook-url"}},
		{[]string{"migrate", "up", "--help"}, []string{"-database-urls", "-shards"}, []string{"-jwt-secret", "-kafka-brokers"}},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), tc.args, noEnv, &out, &out); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%v: error %v, want flag.ErrHelp", tc.args, err)
		}
		for _, s := range tc.has {
			if !strings.Contains(out.String(), s+" ") {
				t.Errorf("%v does not list %s", tc.args, s)
			}
		}
		for _, s := range tc.lack {
			if strings.Contains(out.String(), s+" ") {
				t.Errorf("%v lists %s, which it does not read", tc.args, s)
			}
		}
	}
}

// TestToolsStartWithoutJWTSecret runs migrate, consume inventory and
// relay with no JWT setting at all: they verify no tokens, so they must
// start, each with its own wiring (its counters on /metrics).
func TestToolsStartWithoutJWTSecret(t *testing.T) {
	cfg := testenv.Config(t, 2)
	topic := testenv.Topic(t, cfg)
	env := map[string]string{
		"FLASHSALE_DATABASE_URLS": strings.Join(cfg.DatabaseURLs, ","), "FLASHSALE_SHARDS": "2",
		"FLASHSALE_KAFKA_BROKERS": strings.Join(cfg.KafkaBrokers, ","), "FLASHSALE_KAFKA_TOPIC": topic,
		"FLASHSALE_DEAD_LETTER_TOPIC": topic + ".dlq", "FLASHSALE_MIGRATE_ON_START": "false",
		"FLASHSALE_SHUTDOWN_TIMEOUT": "10s", "FLASHSALE_DEBUG_ADDR": "127.0.0.1:0",
		"FLASHSALE_REDIS_ADDRS": strings.Join(cfg.RedisAddrs, ","), "FLASHSALE_REDIS_PREFIX": cfg.RedisPrefix,
	}
	getenv := func(k string) string { return env[k] }
	var stdout, logs testenv.SyncBuffer
	if err := run(context.Background(), []string{"migrate", "version"}, getenv, &stdout, &logs); err != nil {
		t.Fatalf("migrate version: %v\n%s", err, logs.String())
	}
	if !strings.Contains(stdout.String(), "version=") {
		t.Errorf("migrate version printed %q", stdout.String())
	}
	runBriefly(t, []string{"consume", "inventory"}, getenv, `flashsale_consumer_applied_total{consumer="inventory"}`)
	runBriefly(t, []string{"relay"}, getenv, "flashsale_outbox_published_total")
}

// runBriefly runs a long-running command until its debug listener shows
// metric, then stops it: it must return nil.
func runBriefly(t *testing.T, args []string, getenv env, metric string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testenv.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, getenv, &logs, &logs) }()
	var addr string
	for deadline := time.Now().Add(30 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		addr = logged(&logs, "serving metrics and profiles")
	}
	if addr == "" {
		t.Fatalf("%v did not start within 30 s\n%s", args, logs.String())
	}
	if _, ok := testenv.Scrape(t, "http://"+addr+"/metrics")[metric]; !ok {
		t.Errorf("%v: no %s on /metrics", args, metric)
	}
	cancel()
	waitStopped(t, strings.Join(args, " "), done, 25*time.Second, &logs)
}

// waitStopped fails the test unless the command, told to stop, returns
// nil on done within d.
func waitStopped(t *testing.T, command string, done <-chan error, d time.Duration, logs fmt.Stringer) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v\n%s", command, err, logs)
		}
	case <-time.After(d):
		t.Fatalf("%s did not stop within %v of being told to", command, d)
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
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

// TestToolsStartWithoutJWTSecret runs migrate and consume inventory with
// no JWT setting at all: they verify no tokens, so they must start.
func TestToolsStartWithoutJWTSecret(t *testing.T) {
	cfg := testenv.Config(t, 2)
	topic := testenv.Topic(t, cfg)
	env := map[string]string{
		"FLASHSALE_DATABASE_URLS": strings.Join(cfg.DatabaseURLs, ","), "FLASHSALE_SHARDS": "2",
		"FLASHSALE_KAFKA_BROKERS": strings.Join(cfg.KafkaBrokers, ","), "FLASHSALE_KAFKA_TOPIC": topic,
		"FLASHSALE_DEAD_LETTER_TOPIC": topic + ".dlq", "FLASHSALE_MIGRATE_ON_START": "false",
		"FLASHSALE_SHUTDOWN_TIMEOUT": "10s", "FLASHSALE_DEBUG_ADDR": "127.0.0.1:0",
	}
	getenv := func(k string) string { return env[k] }
	var stdout, logs testenv.SyncBuffer
	if err := run(context.Background(), []string{"migrate", "version"}, getenv, &stdout, &logs); err != nil {
		t.Fatalf("migrate version: %v\n%s", err, logs.String())
	}
	if !strings.Contains(stdout.String(), "version=") {
		t.Errorf("migrate version printed %q", stdout.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"consume", "inventory"}, getenv, &stdout, &logs) }()
	// The ledger's counters on the debug listener show the consumer wired.
	var addr string
	for deadline := time.Now().Add(30 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		addr = logged(&logs, "serving metrics and profiles")
	}
	if addr == "" {
		t.Fatalf("consume inventory did not start within 30 s\n%s", logs.String())
	}
	if _, ok := testenv.Scrape(t, "http://"+addr+"/metrics")[`flashsale_consumer_applied_total{consumer="inventory"}`]; !ok {
		t.Errorf("the inventory consumer is not on /metrics")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("consume inventory: %v\n%s", err, logs.String())
		}
	case <-time.After(25 * time.Second):
		t.Fatal("consume inventory did not stop within 25 s of its context ending")
	}
}

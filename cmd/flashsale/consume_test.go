package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"flashsale/internal/testenv"
)

func TestConsumeRefusesWhatItCannotRun(t *testing.T) {
	for args, want := range map[string]string{
		"consume":              "inventory or notify",
		"consume ledger":       "inventory or notify",
		"consume notify":       "webhook-url is required",
		"consume inventory -x": "flag provided but not defined",
	} {
		var out bytes.Buffer
		err := run(context.Background(), strings.Fields(args), noEnv, &out, &out)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", args, err, want)
		}
	}
}

// TestConsumeNotifyPostsAndStopsOnCancel runs `flashsale consume notify`
// in-process against the real stack: an event on the topic reaches the
// webhook, and cancelling the signal context stops the command cleanly.
func TestConsumeNotifyPostsAndStopsOnCancel(t *testing.T) {
	cfg := testenv.Config(t, 2)
	topic := testenv.Topic(t, cfg)
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Header.Get("Webhook-Id")+" "+string(b))
		mu.Unlock()
	}))
	defer srv.Close()
	env := map[string]string{
		"FLASHSALE_DATABASE_URLS": strings.Join(cfg.DatabaseURLs, ","), "FLASHSALE_SHARDS": "2",
		"FLASHSALE_KAFKA_BROKERS": strings.Join(cfg.KafkaBrokers, ","), "FLASHSALE_KAFKA_TOPIC": topic,
		"FLASHSALE_DEAD_LETTER_TOPIC": topic + ".dlq", "FLASHSALE_WEBHOOK_URL": srv.URL,
		"FLASHSALE_WEBHOOK_SECRET": "whsec_Zmxhc2hzYWxlLXRlc3Qtd2ViaG9vay1rZXktMzJieXQ=", "FLASHSALE_MIGRATE_ON_START": "false",
		"FLASHSALE_SHUTDOWN_TIMEOUT": "10s", "FLASHSALE_LOG_LEVEL": "info", "FLASHSALE_DEBUG_ADDR": "127.0.0.1:0",
	}

	const id = "0b5c1d0e-7c4f-4a53-9d0e-3f8f2f7b9a10"
	value, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": id, "source": "/flashsale/shards/1",
		"type": "flashsale.order.paid", "subject": "42", "time": time.Now().UTC().Format(time.RFC3339Nano),
		"data": map[string]any{"order_id": "42", "status": "paid"}})
	tr := &kafka.Transport{}
	w := &kafka.Writer{Addr: kafka.TCP(cfg.KafkaBrokers...), Topic: topic, Transport: tr, RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond, AllowAutoTopicCreation: true}
	defer tr.CloseIdleConnections()
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	for {
		err := w.WriteMessages(wctx, kafka.Message{Key: []byte("42"), Value: value})
		if err == nil {
			break
		}
		if wctx.Err() != nil {
			t.Fatalf("produce: %v", err)
		}
		time.Sleep(200 * time.Millisecond) // the auto-created topic gets its leader
	}
	_ = w.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testenv.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"consume", "notify"}, func(k string) string { return env[k] }, &logs, &logs)
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no webhook within 30 s\n%s", logs.String())
		}
	}
	// The webhook is posted before the inbox row commits: wait for the count.
	addr, applied := debugAddr(t, &logs), 0.0
	for deadline := time.Now().Add(10 * time.Second); applied != 1 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		applied = testenv.Scrape(t, "http://"+addr+"/metrics")[`flashsale_consumer_applied_total{consumer="notify"}`]
	}
	if applied != 1 {
		t.Errorf("applied events on /metrics: %v, want 1", applied)
	}
	cancel()
	waitStopped(t, "consume", done, 25*time.Second, &logs)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || !strings.HasPrefix(got[0], id+" ") {
		t.Fatalf("webhooks %q", got)
	}
}

// debugAddr is the debug listener's address, from the command's log.
func debugAddr(t *testing.T, logs *testenv.SyncBuffer) string {
	t.Helper()
	addr := logged(logs, "serving metrics and profiles")
	if addr == "" {
		t.Fatalf("no debug listener in the log:\n%s", logs.String())
	}
	return addr
}

// logged is the addr attribute of the first log record saying msg, or "".
func logged(logs *testenv.SyncBuffer, msg string) string {
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg {
			return rec.Addr
		}
	}
	return ""
}

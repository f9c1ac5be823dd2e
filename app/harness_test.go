package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"flashsale/app"
	"flashsale/auth"
	"flashsale/config"
	"flashsale/internal/apitest"
	"flashsale/internal/apptest"
	"flashsale/internal/testenv"
	"flashsale/shard"
)

// stack is one flashsale instance on the real services, private to a test.
type stack struct {
	t    *testing.T
	cfg  *config.Config
	app  *app.App
	base string
	http *http.Client
}

// start runs an instance until the test ends; tune adjusts the config.
func start(t *testing.T, tune func(*config.Config)) *stack {
	t.Helper()
	return startSharded(t, 4, tune)
}

// startSharded runs an instance over fresh databases holding shards shards.
func startSharded(t *testing.T, shards int, tune func(*config.Config)) *stack {
	t.Helper()
	cfg := testenv.Config(t, shards)
	cfg.IPRate, cfg.IPBurst = 1_000_000, 1_000_000
	if tune != nil {
		tune(cfg)
	}
	return startWith(t, cfg)
}

// withEvents runs the relay and the consumers in the instance, on a topic
// and dead-letter topic of the test's own.
func withEvents(t *testing.T) func(*config.Config) {
	return func(c *config.Config) {
		c.RelayEnabled, c.ConsumersEnabled = true, true
		testenv.Topic(t, c)
		c.DeadLetterTopic = c.KafkaTopic + ".dlq"
	}
}

func startWith(t *testing.T, cfg *config.Config) *stack {
	t.Helper()
	return startOpts(t, cfg, apptest.Options{})
}

// startOpts runs an instance started with opt.
func startOpts(t *testing.T, cfg *config.Config, opt apptest.Options) *stack {
	t.Helper()
	inst := apptest.Start(t, cfg, opt)
	tr := &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 512}
	t.Cleanup(tr.CloseIdleConnections)
	waitFirstWatch(t, inst.App)
	// Every answer the tests get is checked against api/openapi.json.
	client := &http.Client{Transport: apitest.Transport(t, tr), Timeout: 30 * time.Second}
	return &stack{t: t, cfg: cfg, app: inst.App, base: inst.Base, http: client}
}

// waitFirstWatch waits for the instance's first look at Redis node 1: a
// test's key prefix is new, so the first instance's look rebuilds every
// live sale, and a test that edits Redis keys by hand must not race it.
func waitFirstWatch(t *testing.T, a *app.App) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for a.Watcher().Stats().Looks == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the Redis watcher made no first round within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *stack) token(sub string, admin bool) string {
	tok, err := auth.Mint(s.cfg.JWTSecret, sub, admin, time.Hour, time.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// reply is an HTTP answer, read whole.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
	return m
}

// problemType is the last path segment of a problem+json type.
func (r reply) problemType(t *testing.T) string {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("status %d with Content-Type %q, body %s", r.Status, ct, r.Body)
	}
	typ, _ := r.json(t)["type"].(string)
	return typ[strings.LastIndex(typ, "/")+1:]
}

func (s *stack) do(method, path, token string, body any, hdr map[string]string) reply {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Errorf("%s %s: %v", method, path, err)
		return reply{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// createSale makes an active sale and returns its id.
func (s *stack) createSale(stock, limit int) string {
	s.t.Helper()
	now := time.Now().UTC()
	r := s.do("POST", "/v1/admin/sales", s.token("admin", true), map[string]any{
		"sku": "SKU-1", "title": "Phone", "price_cents": 19900, "currency": "EUR", "stock": stock,
		"per_user_limit": limit, "starts_at": now.Add(-time.Minute), "ends_at": now.Add(time.Hour)}, nil)
	if r.Status != http.StatusCreated {
		s.t.Fatalf("create sale: %d %s", r.Status, r.Body)
	}
	return r.json(s.t)["id"].(string)
}

func (s *stack) order(buyer, key, saleID string, qty int) reply {
	return s.do("POST", "/v1/orders", s.token(buyer, false), map[string]any{"sale_id": saleID, "quantity": qty},
		map[string]string{"Idempotency-Key": key})
}

// eachShard runs q on every shard schema (placeholder __shard__) and sums
// the single integer each returns.
func (s *stack) sumShards(q string, args ...any) int {
	s.t.Helper()
	m, _ := shard.NewMap(s.cfg.Shards, len(s.cfg.DatabaseURLs))
	total := 0
	for db, u := range s.cfg.DatabaseURLs {
		conn, err := pgx.Connect(context.Background(), u)
		if err != nil {
			s.t.Fatal(err)
		}
		for _, sh := range m.OnDatabase(db) {
			var n int
			if err := conn.QueryRow(context.Background(), strings.ReplaceAll(q, "__shard__", sh.Schema()), args...).Scan(&n); err != nil {
				s.t.Fatal(err)
			}
			total += n
		}
		conn.Close(context.Background())
	}
	return total
}

func (s *stack) redis() *redis.Client { return testenv.Redis(s.t, s.cfg, 0) }

// remaining is the sale's Redis stock.
func (s *stack) remaining(saleID string) int {
	n, err := s.redis().HGet(context.Background(), fmt.Sprintf("%s:{sale:%s}", s.cfg.RedisPrefix, saleID), "stock").Int()
	if err != nil {
		s.t.Fatal(err)
	}
	return n
}

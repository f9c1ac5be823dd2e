package app_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"flashsale/config"
	"flashsale/internal/testenv"
)

// TestErrorContract sends every refusal of the contract and checks its
// status, problem type and headers, then that none of them changed state.
func TestErrorContract(t *testing.T) {
	s := start(t, nil)
	sale := s.createSale(10, 2)
	buyer := s.token("buyer-1", false)
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"sub": "x", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(testenv.JWTSecret))
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "x"}).SignedString([]byte(testenv.JWTSecret))
	expired, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "x", "exp": time.Now().Add(-time.Hour).Unix()}).SignedString([]byte(testenv.JWTSecret))
	wrongKey, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "x", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte("another-secret-0123456789"))
	longSub, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": strings.Repeat("s", 65), "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(testenv.JWTSecret))
	key := map[string]string{"Idempotency-Key": "k"}
	body := map[string]any{"sale_id": sale, "quantity": 1}
	now := time.Now().UTC()

	cases := []struct {
		name, method, path, token string
		body                      any
		hdr                       map[string]string
		status                    int
		typ                       string
	}{
		{"no token", "POST", "/v1/orders", "", body, key, 401, "unauthorized"},
		{"HS512 token", "POST", "/v1/orders", hs512, body, key, 401, "unauthorized"},
		{"token without exp", "POST", "/v1/orders", noExp, body, key, 401, "unauthorized"},
		{"expired token", "POST", "/v1/orders", expired, body, key, 401, "unauthorized"},
		{"token signed with another key", "POST", "/v1/orders", wrongKey, body, key, 401, "unauthorized"},
		{"sub longer than 64", "POST", "/v1/orders", longSub, body, key, 401, "unauthorized"},
		{"buyer on admin endpoint", "POST", "/v1/admin/sales", buyer, map[string]any{}, nil, 403, "forbidden"},
		{"missing Idempotency-Key", "POST", "/v1/orders", buyer, body, nil, 400, "validation-error"},
		{"Idempotency-Key too long", "POST", "/v1/orders", buyer, body, map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, 400, "validation-error"},
		{"unknown field", "POST", "/v1/orders", buyer, map[string]any{"sale_id": sale, "quantity": 1, "coupon": "x"}, key, 400, "validation-error"},
		{"quantity as string", "POST", "/v1/orders", buyer, map[string]any{"sale_id": sale, "quantity": "1"}, key, 400, "validation-error"},
		{"sale id as number", "POST", "/v1/orders", buyer, map[string]any{"sale_id": 1, "quantity": 1}, key, 400, "validation-error"},
		{"quantity zero", "POST", "/v1/orders", buyer, map[string]any{"sale_id": sale, "quantity": 0}, key, 400, "validation-error"},
		{"quantity above the sale's limit", "POST", "/v1/orders", buyer, map[string]any{"sale_id": sale, "quantity": 3}, key, 400, "validation-error"},
		{"missing quantity", "POST", "/v1/orders", buyer, map[string]any{"sale_id": sale}, key, 400, "validation-error"},
		{"malformed JSON", "POST", "/v1/orders", buyer, `{"sale_id":`, key, 400, "validation-error"},
		{"two JSON values", "POST", "/v1/orders", buyer, `{"sale_id":"1","quantity":1} {}`, key, 400, "validation-error"},
		{"malformed sale id", "POST", "/v1/orders", buyer, map[string]any{"sale_id": "abc", "quantity": 1}, key, 400, "validation-error"},
		{"unknown sale", "POST", "/v1/orders", buyer, map[string]any{"sale_id": "987654321", "quantity": 1}, key, 404, "not-found"},
		{"text/plain body", "POST", "/v1/orders", buyer, body, map[string]string{"Idempotency-Key": "k", "Content-Type": "text/plain"}, 415, "unsupported-media-type"},
		{"body above 16 KiB", "POST", "/v1/orders", buyer, `{"sale_id":"` + strings.Repeat("1", 17<<10) + `"}`, key, 413, "payload-too-large"},
		{"malformed order id", "GET", "/v1/orders/abc", buyer, nil, nil, 400, "validation-error"},
		{"unknown order id", "GET", "/v1/orders/123456789", buyer, nil, nil, 404, "not-found"},
		{"limit 0", "GET", "/v1/orders?limit=0", buyer, nil, nil, 400, "validation-error"},
		{"limit 101", "GET", "/v1/orders?limit=101", buyer, nil, nil, 400, "validation-error"},
		{"limit not a number", "GET", "/v1/orders?limit=ten", buyer, nil, nil, 400, "validation-error"},
		{"forged cursor", "GET", "/v1/orders?cursor=bm90LWEtY3Vyc29y", buyer, nil, nil, 400, "validation-error"},
		{"malformed sale id on GET", "GET", "/v1/sales/x1", "", nil, nil, 400, "validation-error"},
		{"unknown sale on GET", "GET", "/v1/sales/987654321", "", nil, nil, 404, "not-found"},
		{"restock of 0", "POST", "/v1/admin/sales/" + sale + "/restock", s.token("admin", true), map[string]any{"quantity": 0}, nil, 400, "validation-error"},
		{"sale that already ended", "POST", "/v1/admin/sales", s.token("admin", true), map[string]any{"sku": "S", "title": "T",
			"price_cents": 1, "currency": "EUR", "stock": 1, "per_user_limit": 1, "starts_at": now.Add(-2 * time.Hour), "ends_at": now.Add(-time.Hour)}, nil, 400, "validation-error"},
		{"sale with lower-case currency", "POST", "/v1/admin/sales", s.token("admin", true), map[string]any{"sku": "S", "title": "T",
			"price_cents": 1, "currency": "eur", "stock": 1, "per_user_limit": 1, "starts_at": now, "ends_at": now.Add(time.Hour)}, nil, 400, "validation-error"},
		{"sale with limit 0", "POST", "/v1/admin/sales", s.token("admin", true), map[string]any{"sku": "S", "title": "T",
			"price_cents": 1, "currency": "EUR", "stock": 1, "per_user_limit": 0, "starts_at": now, "ends_at": now.Add(time.Hour)}, nil, 400, "validation-error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(tc.method, tc.path, tc.token, tc.body, tc.hdr)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			if got := r.problemType(t); got != tc.typ {
				t.Fatalf("problem type %q, want %q", got, tc.typ)
			}
			p := r.json(t)
			if p["title"] == "" || p["detail"] == "" || p["status"] != float64(tc.status) {
				t.Errorf("incomplete problem: %s", r.Body)
			}
			if tc.status == 401 && r.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if n := s.sumShards(`SELECT count(*) FROM __shard__.orders`); n != 0 {
		t.Errorf("refusals wrote %d orders", n)
	}
	if n := s.sumShards(`SELECT count(*) FROM __shard__.outbox`); n != 0 {
		t.Errorf("refusals wrote %d outbox rows", n)
	}
	if left := s.remaining(sale); left != 10 {
		t.Errorf("refusals moved stock: %d left, want 10", left)
	}
}

func TestSaleNotActive(t *testing.T) {
	s := start(t, nil)
	now := time.Now().UTC()
	r := s.do("POST", "/v1/admin/sales", s.token("admin", true), map[string]any{"sku": "S", "title": "Later",
		"price_cents": 100, "currency": "EUR", "stock": 5, "per_user_limit": 1,
		"starts_at": now.Add(time.Hour), "ends_at": now.Add(2 * time.Hour)}, nil)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	sale := r.json(t)["id"].(string)
	if st := r.json(t)["state"]; st != "scheduled" {
		t.Errorf("state %v, want scheduled", st)
	}
	o := s.order("early-bird", "k", sale, 1)
	if o.Status != http.StatusConflict || o.problemType(t) != "sale-not-active" {
		t.Fatalf("order before the start: %d %s", o.Status, o.Body)
	}
	if left := s.remaining(sale); left != 5 {
		t.Errorf("stock %d, want 5", left)
	}
}

func TestRateLimitedAnswers429WithHeaders(t *testing.T) {
	s := start(t, func(c *config.Config) { c.UserRate, c.UserBurst = 1, 2 })
	sale := s.createSale(100, 100)
	var last reply
	for i := range 3 {
		last = s.order("eager", fmt.Sprint("key-", i), sale, 1)
	}
	if last.Status != http.StatusTooManyRequests || last.problemType(t) != "rate-limited" {
		t.Fatalf("third request in a burst of 2: %d %s", last.Status, last.Body)
	}
	if ra, err := strconv.Atoi(last.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q, want whole seconds >= 1", last.Header.Get("Retry-After"))
	}
	if !strings.Contains(last.Header.Get("RateLimit"), "r=0") || last.Header.Get("RateLimit-Policy") == "" {
		t.Errorf("RateLimit %q, RateLimit-Policy %q", last.Header.Get("RateLimit"), last.Header.Get("RateLimit-Policy"))
	}
	if n := s.sumShards(`SELECT count(*) FROM __shard__.orders`); n != 2 {
		t.Errorf("%d orders, want 2 (the refused one must not be written)", n)
	}
	// Reads are limited per buyer too, by the same policy.
	for range 4 {
		last = s.do("GET", "/v1/orders", s.token("eager", false), nil, nil)
	}
	if last.Status != http.StatusTooManyRequests {
		t.Errorf("reads over the limit: %d", last.Status)
	}
}

func TestOrderListPagesNewestFirst(t *testing.T) {
	s := start(t, func(c *config.Config) { c.UserRate, c.UserBurst = 1000, 1000 })
	sale := s.createSale(100, 10)
	var ids []string
	for i := range 5 {
		r := s.order("collector", fmt.Sprint("key-", i), sale, 1)
		if r.Status != http.StatusCreated {
			t.Fatalf("order %d: %d %s", i, r.Status, r.Body)
		}
		ids = append(ids, r.json(t)["id"].(string))
	}
	s.order("someone-else", "key-0", sale, 1)
	var got []string
	path := "/v1/orders?limit=2"
	for pages := 0; ; pages++ {
		r := s.do("GET", path, s.token("collector", false), nil, nil)
		if r.Status != http.StatusOK || pages > 3 {
			t.Fatalf("page %d: %d %s", pages, r.Status, r.Body)
		}
		m := r.json(t)
		for _, o := range m["orders"].([]any) {
			got = append(got, o.(map[string]any)["id"].(string))
		}
		next, ok := m["next_cursor"].(string)
		if !ok {
			break
		}
		path = "/v1/orders?limit=2&cursor=" + next
	}
	want := []string{ids[4], ids[3], ids[2], ids[1], ids[0]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pages gave %v, want newest first %v", got, want)
	}
	// The owner reads an order; anyone else gets 404.
	if r := s.do("GET", "/v1/orders/"+ids[0], s.token("collector", false), nil, nil); r.Status != http.StatusOK {
		t.Errorf("owner read: %d", r.Status)
	}
	if r := s.do("GET", "/v1/orders/"+ids[0], s.token("someone-else", false), nil, nil); r.Status != http.StatusNotFound {
		t.Errorf("stranger read: %d, want 404", r.Status)
	}
}

func TestIdempotencyKey(t *testing.T) {
	s := start(t, func(c *config.Config) { c.UserRate, c.UserBurst = 1000, 1000 })
	sale := s.createSale(100, 5)
	var replies [50]reply
	testenv.Burst(50, func(i int) { replies[i] = s.order("retrier", "same-key", sale, 1) })
	var created []reply
	for _, r := range replies {
		switch {
		case r.Status == http.StatusCreated:
			created = append(created, r)
		case r.Status == http.StatusConflict && r.problemType(t) == "idempotency-key-in-use":
		default:
			t.Fatalf("parallel duplicate answered %d %s", r.Status, r.Body)
		}
	}
	var originals []reply
	for _, r := range created {
		if r.Header.Get("Idempotent-Replayed") != "true" {
			originals = append(originals, r)
		}
	}
	if len(originals) != 1 {
		t.Fatalf("%d requests created an order, want exactly 1", len(originals))
	}
	original := originals[0]
	later := s.order("retrier", "same-key", sale, 1)
	for _, r := range append(created, later) {
		if r.Status != http.StatusCreated || !bytes.Equal(r.Body, original.Body) ||
			r.Header.Get("Location") != original.Header.Get("Location") {
			t.Errorf("not a byte-identical replay: %d %s vs %s", r.Status, r.Body, original.Body)
		}
	}
	if later.Header.Get("Idempotent-Replayed") != "true" {
		t.Error("later retry lacks Idempotent-Replayed: true")
	}
	if r := s.order("retrier", "same-key", sale, 2); r.Status != http.StatusUnprocessableEntity || r.problemType(t) != "idempotency-key-reused" {
		t.Errorf("same key, other body: %d %s", r.Status, r.Body)
	}
	if r := s.order("other-buyer", "same-key", sale, 1); r.Status != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("another buyer's same key string: %d %s", r.Status, r.Body)
	}
	if n := s.sumShards(`SELECT count(*) FROM __shard__.orders`); n != 2 {
		t.Errorf("%d orders, want 2", n)
	}
	if left := s.remaining(sale); left != 98 {
		t.Errorf("stock %d, want 98", left)
	}
}

// TestIPLimitFollowsForwardedForBehindTrustedProxy: behind a trusted
// proxy (loopback here) each client address in X-Forwarded-For has a
// bucket of its own in Redis; a peer that is no trusted proxy is limited
// by its own address, whatever the header says.
func TestIPLimitFollowsForwardedForBehindTrustedProxy(t *testing.T) {
	s := start(t, func(c *config.Config) {
		c.IPRate, c.IPBurst = 1, 2
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	sale := s.createSale(10, 1)
	get := func(client string) reply {
		return s.do("GET", "/v1/sales/"+sale, "", nil, map[string]string{"X-Forwarded-For": client})
	}
	for i := range 2 {
		if r := get("198.51.100.1"); r.Status != http.StatusOK {
			t.Fatalf("request %d of a burst of 2: %d %s", i+1, r.Status, r.Body)
		}
	}
	if r := get("198.51.100.1"); r.Status != http.StatusTooManyRequests || r.problemType(t) != "rate-limited" {
		t.Fatalf("third request from one client: %d %s", r.Status, r.Body)
	}
	if r := get("198.51.100.2"); r.Status != http.StatusOK {
		t.Errorf("another client behind the same proxy: %d %s", r.Status, r.Body)
	}

	// Loopback is no longer trusted: the header is ignored and the peer's
	// own bucket fills however the header varies.
	u := start(t, func(c *config.Config) { c.IPRate, c.IPBurst = 1, 2 })
	sale = u.createSale(10, 1)
	var last reply
	for i := range 3 {
		last = u.do("GET", "/v1/sales/"+sale, "", nil, map[string]string{"X-Forwarded-For": fmt.Sprint("198.51.100.", 10+i)})
	}
	if last.Status != http.StatusTooManyRequests {
		t.Errorf("an untrusted peer changing X-Forwarded-For escaped its limit: %d %s", last.Status, last.Body)
	}
}

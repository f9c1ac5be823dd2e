package app_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"flashsale/config"
	"flashsale/internal/testenv"
)

// TestPerBuyerLimitCountsEveryKey: the API can only check one request's
// quantity against the sale's limit; what a buyer already holds under
// other keys is known to the reservation script alone, which must refuse
// the unit past the limit with 409 purchase-limit-reached and take nothing.
func TestPerBuyerLimitCountsEveryKey(t *testing.T) {
	s := start(t, nil)
	one := s.createSale(10, 1)
	if r := s.order("solo", "first", one, 1); r.Status != http.StatusCreated {
		t.Fatalf("first order within the limit of 1: %d %s", r.Status, r.Body)
	}
	for range 2 { // a refusal stores nothing, so the retry is judged afresh, alike
		wantLimitReached(t, s.order("solo", "second", one, 1), "a second key past the limit of 1")
	}

	three := s.createSale(10, 3)
	if r := s.order("pair", "a", three, 2); r.Status != http.StatusCreated {
		t.Fatalf("2 of a limit of 3: %d %s", r.Status, r.Body)
	}
	wantLimitReached(t, s.order("pair", "b", three, 2), "2 more when 2 of 3 are held")
	if r := s.order("pair", "c", three, 1); r.Status != http.StatusCreated {
		t.Fatalf("1 more up to exactly the limit of 3: %d %s", r.Status, r.Body)
	}
	wantLimitReached(t, s.order("pair", "d", three, 1), "1 more when all 3 are held")

	if r := s.order("someone-else", "second", one, 1); r.Status != http.StatusCreated {
		t.Errorf("another buyer is not limited by solo's units: %d %s", r.Status, r.Body)
	}
	if left := s.remaining(one); left != 8 {
		t.Errorf("sale with limit 1: %d left, want 8 (refusals must not take stock)", left)
	}
	if left := s.remaining(three); left != 7 {
		t.Errorf("sale with limit 3: %d left, want 7 (refusals must not take stock)", left)
	}
	if n := s.sumShards(`SELECT count(*) FROM __shard__.orders`); n != 4 {
		t.Errorf("%d orders, want 4", n)
	}
	if n := s.sumShards(`SELECT coalesce(sum(quantity), 0)::int FROM __shard__.orders WHERE user_id = 'pair'`); n != 3 {
		t.Errorf("pair holds %d units in orders, want 3", n)
	}
}

func wantLimitReached(t *testing.T, r reply, what string) {
	t.Helper()
	if r.Status != http.StatusConflict || r.problemType(t) != "purchase-limit-reached" {
		t.Fatalf("%s: %d %s, want 409 purchase-limit-reached", what, r.Status, r.Body)
	}
}

// TestUniqueKeyBackstopWhenRedisForgetsTheClaim: Redis loses the claim and
// the reservation of a key whose order committed (a failover to a lagging
// replica, say). The retry reserves again, PostgreSQL's unique
// (user_id, idempotency_key) refuses the second row, the units the retry
// took go back, and the buyer gets the replay of the order the key made.
//
// The limit is 3 because the buyer's held count survives in this model:
// with a limit of 1 the script would refuse the retry before PostgreSQL.
func TestUniqueKeyBackstopWhenRedisForgetsTheClaim(t *testing.T) {
	ctx := context.Background()
	s := start(t, nil)
	sale := s.createSale(10, 3)
	first := s.order("forgetful", "k1", sale, 1)
	if first.Status != http.StatusCreated {
		t.Fatalf("first order: %d %s", first.Status, first.Body)
	}
	rdb := s.redis()
	sk := fmt.Sprintf("%s:{sale:%s}", s.cfg.RedisPrefix, sale)
	field := "forgetful\x00k1"
	forget := func() {
		t.Helper()
		claims, err1 := rdb.Del(ctx, sk+":idem:"+field).Result()
		holds, err2 := rdb.HDel(ctx, sk+":res", field).Result()
		if err1 != nil || err2 != nil || claims != 1 || holds != 1 {
			t.Fatalf("forgetting the key: deleted %d claims (%v), %d reservations (%v); want 1 and 1", claims, err1, holds, err2)
		}
	}
	held := func() int {
		t.Helper()
		n, err := rdb.HGet(ctx, sk+":buyers", "forgetful").Int()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	forget()
	stock, units := s.remaining(sale), held()

	// Another body under the forgotten key: the stored request hash
	// refuses it, though Redis no longer knows the key.
	if r := s.order("forgetful", "k1", sale, 2); r.Status != http.StatusUnprocessableEntity || r.problemType(t) != "idempotency-key-reused" {
		t.Errorf("other body under a key Redis forgot: %d %s, want 422 idempotency-key-reused", r.Status, r.Body)
	}
	if left, h := s.remaining(sale), held(); left != stock || h != units {
		t.Errorf("after the refused body: stock %d, held %d; want %d and %d", left, h, stock, units)
	}

	retry := s.order("forgetful", "k1", sale, 1)
	if retry.Status != http.StatusCreated || retry.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry after Redis forgot the claim: %d %s (Idempotent-Replayed %q), want a 201 replay",
			retry.Status, retry.Body, retry.Header.Get("Idempotent-Replayed"))
	}
	if !bytes.Equal(retry.Body, first.Body) || retry.Header.Get("Location") != first.Header.Get("Location") {
		t.Errorf("replay differs from the first answer:\n%s\n%s", retry.Body, first.Body)
	}
	if n := s.sumShards(`SELECT count(*) FROM __shard__.orders WHERE user_id = 'forgetful' AND idempotency_key = 'k1'`); n != 1 {
		t.Errorf("%d orders for (forgetful, k1), want 1", n)
	}
	if n := s.sumShards(`SELECT count(*) FROM __shard__.outbox`); n != 1 {
		t.Errorf("%d outbox rows, want 1", n)
	}
	if left, h := s.remaining(sale), held(); left != stock || h != units {
		t.Errorf("after the replay: stock %d, held %d; want %d and %d (the retry's units must go back)", left, h, stock, units)
	}
}

// TestCommitDeadlineRefusesALateOrder: with a commit deadline shorter than
// any commit, every reservation is too old by the time PostgreSQL sees it,
// so no order is written; the buyer gets a retryable 503, the units go back
// at once and the key is free, so a retry is judged afresh.
func TestCommitDeadlineRefusesALateOrder(t *testing.T) {
	s := start(t, func(c *config.Config) { c.CommitDeadline = time.Microsecond })
	sale := s.createSale(5, 2)
	for i := range 2 {
		r := s.order("slow", "k1", sale, 2)
		if r.Status != http.StatusServiceUnavailable || r.problemType(t) != "overloaded" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("attempt %d past the commit deadline: %d %s (Retry-After %q), want 503 overloaded",
				i+1, r.Status, r.Body, r.Header.Get("Retry-After"))
		}
	}
	if n := s.sumShards(`SELECT count(*) FROM __shard__.orders`); n != 0 {
		t.Errorf("%d orders committed past their deadline", n)
	}
	if n := s.sumShards(`SELECT count(*) FROM __shard__.outbox`); n != 0 {
		t.Errorf("%d outbox rows committed past their deadline", n)
	}
	if left := s.remaining(sale); left != 5 {
		t.Errorf("stock %d, want 5: the refused reservations' units must come back", left)
	}
	sk := fmt.Sprintf("%s:{sale:%s}", s.cfg.RedisPrefix, sale)
	if n, err := s.redis().HLen(context.Background(), sk+":res").Result(); err != nil || n != 0 {
		t.Errorf("%d reservations still held (%v), want 0", n, err)
	}
}

// TestIPLimitOnTheBuyPath: buyers behind one address (a NAT, a bot farm)
// share one GCRA cell in the reservation script. Past its burst they get
// 429 rate-limited, having taken nothing; a buyer from another address,
// and a refused buyer retrying from there with the same key, still buy.
func TestIPLimitOnTheBuyPath(t *testing.T) {
	const burst, buyers = 3, 12
	s := start(t, func(c *config.Config) { c.IPRate, c.IPBurst = 1, burst })
	sale := s.createSale(100, 1)
	var replies [buyers]reply
	testenv.Burst(buyers, func(i int) { replies[i] = s.order(fmt.Sprint("natted-", i), "k", sale, 1) })
	var bought, refused int
	var refusedBuyer string
	for i, r := range replies {
		switch r.Status {
		case http.StatusCreated:
			bought++
		case http.StatusTooManyRequests:
			refused++
			refusedBuyer = fmt.Sprint("natted-", i)
			checkIPLimited(t, r)
		default:
			t.Fatalf("buyer %d behind the shared address: %d %s", i, r.Status, r.Body)
		}
	}
	// GCRA may let one more through per second the burst took; never fewer.
	if bought < burst || refused == 0 {
		t.Fatalf("%d bought and %d refused of %d buyers behind one address with an IP burst of %d",
			bought, refused, buyers, burst)
	}
	if n := s.sumShards(`SELECT count(*) FROM __shard__.orders`); n != bought {
		t.Errorf("%d orders, want %d (a refusal must write nothing)", n, bought)
	}
	if left := s.remaining(sale); left != 100-bought {
		t.Errorf("stock %d, want %d (a refusal must take nothing)", left, 100-bought)
	}

	other := s.from(t, "127.0.0.2")
	if r := other.order("elsewhere", "k", sale, 1); r.Status != http.StatusCreated {
		t.Errorf("a buyer from another address: %d %s", r.Status, r.Body)
	}
	if r := other.order(refusedBuyer, "k", sale, 1); r.Status != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("a refused buyer retrying from another address: %d %s", r.Status, r.Body)
	}
	if r := s.order("natted-late", "k", sale, 1); r.Status != http.StatusTooManyRequests {
		t.Errorf("the shared address is still limited: %d %s", r.Status, r.Body)
	}
}

// checkIPLimited checks an IP refusal's problem and headers.
func checkIPLimited(t *testing.T, r reply) {
	t.Helper()
	if typ := r.problemType(t); typ != "rate-limited" {
		t.Fatalf("429 with problem type %q", typ)
	}
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q, want whole seconds >= 1", r.Header.Get("Retry-After"))
	}
	if rl := r.Header.Get("RateLimit"); !strings.HasPrefix(rl, `"ip";`) || !strings.Contains(rl, "r=0") {
		t.Errorf("RateLimit %q, want the ip policy with r=0", rl)
	}
}

// from is s seen from another loopback address: its requests reach the
// server with that address as their peer, no header involved.
func (s *stack) from(t *testing.T, ip string) *stack {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	c := *s
	c.http = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return &c
}

// TestIPRefusalOnTheBuyPathNamesItsPolicy: a 429 names the limit that
// refused it in RateLimit, and RateLimit-Policy must describe that limit,
// or a client cannot tell which quota it ran into (RFC draft
// ietf-httpapi-ratelimit-headers: RateLimit refers to a policy by name).
func TestIPRefusalOnTheBuyPathNamesItsPolicy(t *testing.T) {
	s := start(t, func(c *config.Config) { c.IPRate, c.IPBurst = 1, 1 })
	sale := s.createSale(10, 1)
	if r := s.order("first", "k", sale, 1); r.Status != http.StatusCreated {
		t.Fatalf("first order: %d %s", r.Status, r.Body)
	}
	r := s.order("second", "k", sale, 1)
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("second order from the address: %d %s, want 429", r.Status, r.Body)
	}
	checkIPLimited(t, r)
	if p := r.Header.Get("RateLimit-Policy"); !strings.Contains(p, `"ip";q=1;w=1`) {
		t.Errorf("RateLimit %q refers to a policy RateLimit-Policy %q does not describe", r.Header.Get("RateLimit"), p)
	}
}

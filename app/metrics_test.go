package app_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"flashsale/app"
	"flashsale/internal/testenv"
)

// TestMetricsCountTheBuyPath: a sale of one unit, bought once and then
// refused; /metrics on the debug handler shows the reservation, the
// commit and its confirmation to Redis, the sold-out answers from memory,
// the relayed event and the ledger's applied event.
func TestMetricsCountTheBuyPath(t *testing.T) {
	s := start(t, withEvents(t))
	debug := httptest.NewServer(app.DebugHandler(s.app.Metrics()))
	t.Cleanup(debug.Close)

	sale := s.createSale(1, 1)
	if r := s.order("metrics-buyer-0", "k", sale, 1); r.Status != http.StatusCreated {
		t.Fatalf("first order: %d %s", r.Status, r.Body)
	}
	// The first refusal comes from Redis and marks the sale; the rest from memory.
	for i := 1; i <= 4; i++ {
		if r := s.order("metrics-buyer-"+strconv.Itoa(i), "k", sale, 1); r.Status != http.StatusConflict {
			t.Fatalf("order %d: %d %s", i, r.Status, r.Body)
		}
	}
	want := map[string]float64{
		`flashsale_stock_seconds_count{op="reserve",outcome="ok"}`:       1,
		`flashsale_stock_seconds_count{op="reserve",outcome="sold_out"}`: 0, // the sale was marked by the winning reservation
		`flashsale_store_seconds_count{op="create",outcome="ok"}`:        1,
		`flashsale_sold_out_memory_total{event="hit"}`:                   4,
		`flashsale_sold_out_memory_total{event="mark"}`:                  1,
		`flashsale_outbox_published_total`:                               1,
		`flashsale_outbox_lag_seconds_count`:                             1,
		`flashsale_consumer_applied_total{consumer="inventory"}`:         1,
		`flashsale_stock_seconds_count{op="confirm",outcome="ok"}`:       1,
		`flashsale_reservations_confirmed_total`:                         1,
	}
	var got map[string]float64
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got = testenv.Scrape(t, debug.URL+"/metrics")
		if matches(got, want) {
			break
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	// The one event waited for Kafka's ack some time above zero.
	if sum := got["flashsale_outbox_lag_seconds_sum"]; sum <= 0 || sum > 20 {
		t.Errorf("relay lag sum %v s for one event, want its lag", sum)
	}
	if got["go_goroutines"] <= 0 || got["process_resident_memory_bytes"] <= 0 {
		t.Errorf("runtime and process metrics missing: goroutines %v, rss %v", got["go_goroutines"], got["process_resident_memory_bytes"])
	}
}

func matches(got, want map[string]float64) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

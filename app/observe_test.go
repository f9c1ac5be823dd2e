package app_test

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"flashsale/app"
	"flashsale/internal/apptest"
	"flashsale/internal/testenv"
)

// TestEveryRequestIsMeasuredAndLogged: with access-log=all, each request
// of a small sale is counted by route pattern, method and status, timed
// by route and method, and logged as one JSON line; a path no route
// matches is labelled "unmatched", and an order id never becomes a label.
func TestEveryRequestIsMeasuredAndLogged(t *testing.T) {
	cfg := testenv.Config(t, 4)
	cfg.IPRate, cfg.IPBurst = 1_000_000, 1_000_000
	cfg.AccessLog = "all"
	logs := &testenv.SyncBuffer{}
	inst := apptest.Start(t, cfg, apptest.Options{Log: slog.New(slog.NewJSONHandler(logs, nil))})
	a := inst.App
	debug := httptest.NewServer(app.DebugHandler(a.Metrics()))
	tr := &http.Transport{}
	t.Cleanup(func() {
		debug.Close()
		tr.CloseIdleConnections()
	})
	s := &stack{t: t, cfg: cfg, app: a, base: inst.Base, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}

	sale := s.createSale(1, 1)
	first := s.order("red-buyer-1", "k", sale, 1)
	if first.Status != http.StatusCreated {
		t.Fatalf("order: %d %s", first.Status, first.Body)
	}
	if r := s.order("red-buyer-2", "k", sale, 1); r.Status != http.StatusConflict {
		t.Fatalf("second order: %d %s", r.Status, r.Body)
	}
	id := first.json(t)["id"].(string)
	buyer := s.token("red-buyer-1", false)
	for path, want := range map[string]int{"/v1/orders/" + id: 200, "/v1/orders/1": 404, "/no/such/route": 404} {
		if r := s.do("GET", path, buyer, nil, map[string]string{"X-Request-Id": "req-" + path}); r.Status != want {
			t.Fatalf("GET %s: %d, want %d", path, r.Status, want)
		}
	}

	got := testenv.Scrape(t, debug.URL+"/metrics")
	for series, want := range map[string]float64{
		`flashsale_http_requests_total{method="POST",route="/v1/admin/sales",status="201"}`:   1,
		`flashsale_http_requests_total{method="POST",route="/v1/orders",status="201"}`:        1,
		`flashsale_http_requests_total{method="POST",route="/v1/orders",status="409"}`:        1,
		`flashsale_http_requests_total{method="GET",route="/v1/orders/{id}",status="200"}`:    1,
		`flashsale_http_requests_total{method="GET",route="/v1/orders/{id}",status="404"}`:    1,
		`flashsale_http_requests_total{method="GET",route="unmatched",status="404"}`:          1,
		`flashsale_http_request_duration_seconds_count{method="POST",route="/v1/orders"}`:     2,
		`flashsale_http_request_duration_seconds_count{method="GET",route="/v1/orders/{id}"}`: 2,
	} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v", series, got[series], want)
		}
	}
	if got[`flashsale_http_request_duration_seconds_sum{method="POST",route="/v1/orders"}`] <= 0 {
		t.Error("the duration histogram's sum is zero")
	}
	for series := range got {
		if strings.Contains(series, id) {
			t.Errorf("an order id became a label: %s", series)
		}
	}
	checkAccessLog(t, logs.String(), id)
}

// accessLine is the access log line of one request.
type accessLine struct {
	Level, Msg, Method, Route, Path, Remote string
	Status                                  int
	DurationMS                              float64 `json:"duration_ms"`
	Bytes                                   int64
	RequestID                               string `json:"request_id"`
}

func checkAccessLog(t *testing.T, logs, orderID string) {
	t.Helper()
	var lines []accessLine
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var l accessLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "request" {
			lines = append(lines, l)
		}
	}
	if len(lines) != 6 {
		t.Fatalf("%d access log lines, want 6:\n%s", len(lines), logs)
	}
	byPath := map[string]accessLine{}
	for _, l := range lines {
		byPath[l.Method+" "+l.Path] = l
		if l.Level != "INFO" || l.RequestID == "" || l.Remote != "127.0.0.1" || l.Bytes <= 0 || l.DurationMS <= 0 {
			t.Errorf("access log line %+v", l)
		}
	}
	l := byPath["GET /v1/orders/"+orderID]
	if l.Route != "/v1/orders/{id}" || l.Status != 200 || l.RequestID != "req-/v1/orders/"+orderID {
		t.Errorf("order lookup logged as %+v", l)
	}
	if l := byPath["GET /no/such/route"]; l.Route != "unmatched" || l.Status != 404 {
		t.Errorf("unmatched path logged as %+v", l)
	}
	if l := byPath["POST /v1/orders"]; l.Route != "/v1/orders" {
		t.Errorf("order logged as %+v", l)
	}
}

package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"flashsale/internal/apptest"
	"flashsale/internal/testenv"
	"flashsale/inventory"
)

// TestSalePageStreamEndsWithTheServer: the sale page's stream sends the
// sale as Server-Sent Events, uncached, and ends when the server shuts
// down, so the ordered shutdown still finishes within its timeout
// (a stream that outlived it would make Serve fail with the deadline).
func TestSalePageStreamEndsWithTheServer(t *testing.T) {
	cfg := testenv.Config(t, 4)
	cfg.ShutdownTimeout = 5 * time.Second
	inst := apptest.Start(t, cfg, apptest.Options{})
	now := time.Now().UTC()
	sale, err := inst.App.Sales().CreateSale(context.Background(), inventory.NewSale{SKU: "SKU-1", Title: "Phone", PriceCents: 100, Currency: "EUR",
		Stock: 7, PerUserLimit: 1, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	base := inst.Base

	// Bounded: a stream the shutdown failed to end would otherwise hang the test.
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Get(base + "/dashboard/stream?sale=" + sale.ID.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); ct != "text/event-stream" || cc != "no-store" {
		t.Errorf("stream answered Content-Type %q, Cache-Control %q; want text/event-stream, no-store", ct, cc)
	}
	events := bufio.NewScanner(resp.Body)
	if ev := nextEvent(t, events); ev.Sale.Remaining != 7 || ev.Sale.State != "active" {
		t.Errorf("first event: %+v, want the sale with 7 units left, active", ev.Sale)
	}

	if err := inst.Stop(); err != nil {
		t.Errorf("serve with a sale page open: %v, want a clean shutdown", err)
	}
	for events.Scan() {
	}
	if err := events.Err(); err != nil {
		t.Errorf("stream after shutdown: %v, want its end", err)
	}
}

// TestSalePageIsServed: / leads to the page, which loads its own files
// only, and an unknown sale's stream is a problem, not an endless stream.
func TestSalePageIsServed(t *testing.T) {
	s := start(t, nil)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(s.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "/dashboard" {
		t.Errorf("GET /: %d to %q, want 302 to /dashboard", resp.StatusCode, loc)
	}
	page := s.do("GET", "/dashboard?sale=1", "", nil, nil)
	if page.Status != http.StatusOK || !strings.Contains(string(page.Body), `<script src="/dashboard/app.js"`) ||
		!strings.Contains(page.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("GET /dashboard: %d, CSP %q, body %.200s", page.Status, page.Header.Get("Content-Security-Policy"), page.Body)
	}
	for _, f := range []string{"/dashboard/app.js", "/dashboard/style.css"} {
		if r := s.do("GET", f, "", nil, nil); r.Status != http.StatusOK || len(r.Body) == 0 {
			t.Errorf("GET %s: %d, %d bytes", f, r.Status, len(r.Body))
		}
	}
	if r := s.do("GET", "/dashboard/stream?sale=999999", "", nil, nil); r.Status != http.StatusNotFound || r.problemType(t) != "not-found" {
		t.Errorf("stream of an unknown sale: %d %s, want 404 not-found", r.Status, r.Body)
	}
}

// saleEvent is the part of a sale page event these tests read.
type saleEvent struct {
	Sale struct {
		Remaining int    `json:"remaining"`
		State     string `json:"state"`
	} `json:"sale"`
	Instance json.RawMessage `json:"instance"`
}

// nextEvent reads the stream's next data line.
func nextEvent(t *testing.T, sc *bufio.Scanner) saleEvent {
	t.Helper()
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev saleEvent
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		return ev
	}
	t.Fatalf("stream ended before an event: %v", sc.Err())
	return saleEvent{}
}

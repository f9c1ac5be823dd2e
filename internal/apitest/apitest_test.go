package apitest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps the errors and cleanups of Transport.
type recorder struct {
	*testing.T
	errs     []string
	cleanups []func()
}

func (r *recorder) Error(args ...any) { r.errs = append(r.errs, fmt.Sprint(args...)) }
func (r *recorder) Cleanup(fn func()) { r.cleanups = append(r.cleanups, fn) }

const sale = `{"id":"1","sku":"S","title":"T","price_cents":100,"currency":"EUR","stock":5,"per_user_limit":1,` +
	`"starts_at":"2026-01-01T00:00:00Z","ends_at":"2026-01-02T00:00:00Z","state":"active","remaining":5,` +
	`"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}`

// TestTransportFailsUndescribedAnswers serves answers the document
// describes and some it does not, and expects an error for each of the
// latter only, once per distinct answer.
func TestTransportFailsUndescribedAnswers(t *testing.T) {
	answers := map[string]struct {
		status int
		ct     string
		body   string
	}{
		"/v1/sales/1":  {200, "application/json", sale},
		"/v1/sales/2":  {200, "application/json", strings.Replace(sale, `"remaining":5`, `"remaining":"5"`, 1)}, // wrong type
		"/v1/sales/3":  {200, "application/json", strings.Replace(sale, `"id":"1",`, `"id":"1","extra":1,`, 1)}, // undocumented field
		"/v1/sales/4":  {418, "application/json", `{}`},                                                         // undocumented status
		"/v1/sales/5":  {404, "application/problem+json", `{"type":"https://flashsale.example/problems/not-found","title":"Not found","status":404}`},
		"/v1/sales/6":  {404, "application/problem+json", `{"type":"https://flashsale.example/problems/sold-out","title":"Sold out","status":404}`}, // wrong type for the status
		"/no/such":     {404, "application/problem+json", `{"type":"https://flashsale.example/problems/not-found","title":"Not found","status":404}`},
		"/no/such/200": {200, "application/json", `{}`}, // an undocumented operation
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := answers[r.URL.Path]
		w.Header().Set("Content-Type", a.ct)
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	defer srv.Close()
	rec := &recorder{T: t}
	client := &http.Client{Transport: Transport(rec, http.DefaultTransport)}
	for _, path := range []string{"/v1/sales/1", "/v1/sales/2", "/v1/sales/2", "/v1/sales/3", "/v1/sales/4",
		"/v1/sales/5", "/v1/sales/6", "/no/such", "/no/such/200"} {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != answers[path].body {
			t.Errorf("%s: the caller got %q, not the body sent", path, b)
		}
	}
	for _, fn := range rec.cleanups {
		fn()
	}
	want := []string{"/v1/sales/2 ", "/v1/sales/3 ", "/v1/sales/4 ", "/v1/sales/6 ", "/no/such/200 "}
	if len(rec.errs) != len(want) {
		t.Fatalf("%d errors, want %d (one per undescribed answer):\n%s", len(rec.errs), len(want), strings.Join(rec.errs, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(rec.errs[i], w) {
			t.Errorf("error %d is not about %s: %s", i, w, rec.errs[i])
		}
	}
}

// TestContractDescribesAnswersOfOtherBranches checks answers that other
// branches add (replay: held and sold_out, a sold-out Retry-After;
// failfast: service-unavailable) against the document, so it is right
// when they merge.
func TestContractDescribesAnswersOfOtherBranches(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	problem := func(slug string, status int) []byte {
		return []byte(fmt.Sprintf(`{"type":"https://flashsale.example/problems/%s","title":"x","status":%d,"detail":"d","instance":"/v1/orders"}`, slug, status))
	}
	cases := []struct {
		name, method, path string
		status             int
		header             http.Header
		body               []byte
	}{
		{"sold out, units held", "GET", "/v1/sales/1", 200, http.Header{"Content-Type": {"application/json"}},
			[]byte(strings.Replace(sale, `"remaining":5`, `"remaining":0,"sold_out":"held","held":3`, 1))},
		{"sold out, gone", "GET", "/v1/sales/1", 200, http.Header{"Content-Type": {"application/json"}},
			[]byte(strings.Replace(sale, `"remaining":5`, `"remaining":0,"sold_out":"gone","held":0`, 1))},
		{"sold out while held", "POST", "/v1/orders", 409,
			http.Header{"Content-Type": {"application/problem+json"}, "Retry-After": {"1"}}, problem("sold-out", 409)},
		{"breaker open", "POST", "/v1/orders", 503,
			http.Header{"Content-Type": {"application/problem+json"}, "Retry-After": {"1"}}, problem("service-unavailable", 503)},
	}
	for _, tc := range cases {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if err := c.Check(req, tc.status, tc.header, tc.body); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// And the document is not merely lax: a 503 without Retry-After is not described.
	req := httptest.NewRequest("POST", "/v1/orders", nil)
	if c.Check(req, 503, http.Header{"Content-Type": {"application/problem+json"}}, problem("service-unavailable", 503)) == nil {
		t.Error("a 503 without Retry-After passed")
	}
}

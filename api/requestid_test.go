package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRequestIDs numbers requests under the instance's prefix and keeps an
// id the client sent, where the handlers and their logs find it.
func TestRequestIDs(t *testing.T) {
	h := &handler{reqPrefix: requestIDPrefix()}
	var seen []string
	mw := h.requestID(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { seen = append(seen, requestID(r)) }))
	for _, given := range []string{"", "", "client-7"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if given != "" {
			r.Header.Set("X-Request-Id", given)
		}
		mw.ServeHTTP(httptest.NewRecorder(), r)
	}
	if len(seen) != 3 || seen[0] != h.reqPrefix+"1" || seen[1] != h.reqPrefix+"2" || seen[2] != "client-7" {
		t.Errorf("request ids %q, want %[2]q1, %[2]q2 and client-7", seen, h.reqPrefix)
	}
	if !strings.Contains(h.reqPrefix, "/") || !strings.HasSuffix(h.reqPrefix, "-") {
		t.Errorf("prefix %q, want host/random-", h.reqPrefix)
	}
}

package api

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestSampledAccessLogKeepsEveryServerError: in sampled mode one request
// in AccessLogEvery is logged, and every 5xx besides; off logs nothing.
func TestSampledAccessLogKeepsEveryServerError(t *testing.T) {
	for mode, want := range map[AccessLog]int{AccessLogSampled: 3 + 5, AccessLogOff: 0, AccessLogAll: 3*AccessLogEvery + 5} {
		var buf strings.Builder
		h := &handler{Deps: Deps{AccessLog: mode, Log: slog.New(slog.NewJSONHandler(&buf, nil))}}
		status := http.StatusOK
		mw := h.observe(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
		for range 3 * AccessLogEvery {
			mw.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/healthz", nil))
		}
		status = http.StatusServiceUnavailable
		for range 5 {
			mw.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/healthz", nil))
		}
		if got := strings.Count(buf.String(), `"msg":"request"`); got != want {
			t.Errorf("%s: %d lines, want %d", mode, got, want)
		}
		if mode == AccessLogSampled && !strings.Contains(buf.String(), `"sampled":100`) {
			t.Errorf("sampled lines do not say what they stand for: %s", buf.String())
		}
	}
}

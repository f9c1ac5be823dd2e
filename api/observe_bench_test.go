package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
)

// nopObserver stands for the metrics; BenchmarkObserve measures the
// middleware, metrics' own BenchmarkObserveRequest the recording.
type nopObserver struct{}

func (nopObserver) ObserveRequest(string, string, int, time.Duration) {}

// BenchmarkObserve is the observe middleware's cost per request in a chi
// router like the API's, by access-log mode, against the router alone.
func BenchmarkObserve(b *testing.B) {
	for _, mode := range []AccessLog{"none", AccessLogOff, AccessLogSampled, AccessLogAll} {
		b.Run("access-log="+string(mode), func(b *testing.B) {
			h := &handler{Deps: Deps{AccessLog: mode, Observer: nopObserver{}, Log: slog.New(slog.NewJSONHandler(io.Discard, nil))}}
			r := chi.NewRouter()
			if mode != "none" {
				r.Use(h.observe)
			}
			r.Post("/v1/orders", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusConflict) })
			req := httptest.NewRequest(http.MethodPost, "/v1/orders", nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				r.ServeHTTP(w, req)
			}
		})
	}
}

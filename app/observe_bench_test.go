package app_test

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"flashsale/config"
)

// BenchmarkSoldOutAccessLog is BenchmarkSoldOut with each access-log mode,
// the instance logging JSON at info to io.Discard: the cost of formatting
// the line, not of the disk or pipe it would go to.
func BenchmarkSoldOutAccessLog(b *testing.B) {
	for _, mode := range []string{"off", "sampled", "all"} {
		b.Run("access-log="+mode, func(b *testing.B) {
			s := startBenchLog(b, func(c *config.Config) { c.AccessLog = mode }, slog.New(slog.NewJSONHandler(io.Discard, nil)))
			sale := s.createSale(1, 1)
			mk := s.orderRequests(sale)
			if status, body, err := send(s.client, mk(0)); err != nil || status != http.StatusCreated {
				b.Fatalf("buying the only unit: %d %v %s", status, err, body)
			}
			b.Run(concName(), func(b *testing.B) {
				b.ReportAllocs()
				res := hammer(b, s.client, benchConc, mk, http.StatusConflict)
				if n := res.bad.Load(); n > 0 {
					b.Fatalf("%d of %d requests were not 409 sold-out, e.g. %s", n, b.N, res.sample)
				}
			})
		})
	}
}

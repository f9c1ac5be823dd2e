package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"flashsale/config"
	"flashsale/internal/testenv"
)

// TestReadyzFollowsDependencies cuts PostgreSQL, Redis and Kafka one at a
// time (through proxies in front of the real services): /readyz turns 503
// naming what is down, and 200 again once it is back.
func TestReadyzFollowsDependencies(t *testing.T) {
	var pg, rd, kf *testenv.Proxy
	s := start(t, func(c *config.Config) {
		u, _ := url.Parse(c.DatabaseURLs[1])
		pg = testenv.NewProxy(t, u.Host)
		u.Host = pg.Addr()
		c.DatabaseURLs[1] = u.String()
		rd = testenv.NewProxy(t, c.RedisAddrs[0])
		c.RedisAddrs[0] = rd.Addr()
		kf = testenv.NewProxy(t, c.KafkaBrokers[0])
		c.KafkaBrokers = []string{kf.Addr()}
	})
	waitReady(t, s, http.StatusOK, "")
	for _, dep := range []struct {
		name  string
		proxy *testenv.Proxy
	}{{"postgres[1]", pg}, {"redis", rd}, {"kafka", kf}} {
		dep.proxy.Cut()
		r := waitReady(t, s, http.StatusServiceUnavailable, dep.name)
		if r.problemType(t) != "not-ready" || r.Header.Get("Retry-After") == "" {
			t.Errorf("%s down: %s", dep.name, r.Body)
		}
		dep.proxy.Restore()
		waitReady(t, s, http.StatusOK, "")
	}
	if r := s.do("GET", "/healthz", "", nil, nil); r.Status != http.StatusOK {
		t.Errorf("healthz: %d", r.Status)
	}
}

// waitReady polls /readyz until it answers status (with detail naming want).
func waitReady(t *testing.T, s *stack, status int, want string) reply {
	t.Helper()
	var r reply
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		r = s.do("GET", "/readyz", "", nil, nil)
		if r.Status == status && strings.Contains(string(r.Body), want) {
			return r
		}
	}
	t.Fatalf("readyz never answered %d naming %q; last %d %s", status, want, r.Status, r.Body)
	return r
}

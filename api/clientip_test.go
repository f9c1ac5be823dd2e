package api

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestClientIPBelievesOnlyTrustedProxies: X-Forwarded-For counts only
// when the peer is a trusted proxy, and then the nearest address that is
// not one of them is the client; anything unparsable stops the walk.
func TestClientIPBelievesOnlyTrustedProxies(t *testing.T) {
	h := &handler{Deps: Deps{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	for _, c := range []struct{ peer, xff, want string }{
		{"203.0.113.5:1234", "198.51.100.7", "203.0.113.5"},         // untrusted peer: header ignored
		{"10.0.0.1:1234", "198.51.100.7", "198.51.100.7"},           // one trusted hop
		{"10.0.0.1:1234", "198.51.100.7, 10.0.0.2", "198.51.100.7"}, // two trusted hops
		{"10.0.0.1:1234", "192.0.2.66, 198.51.100.7", "198.51.100.7"},
		{"10.0.0.1:1234", "forged, 198.51.100.7", "198.51.100.7"},
		{"10.0.0.1:1234", "198.51.100.7, forged", "10.0.0.1"}, // the walk stops at what it cannot read
		{"10.0.0.1:1234", "", "10.0.0.1"},
		{"10.0.0.1:1234", "10.0.0.3", "10.0.0.3"},                  // every hop trusted: the farthest
		{"[::ffff:10.0.0.1]:1234", "198.51.100.7", "198.51.100.7"}, // an IPv4-mapped peer is unmapped
		{"[2001:db8::1]:1234", "198.51.100.7", "2001:db8::1"},
		{"@", "198.51.100.7", "invalid IP"}, // no IP at all (a unix socket): the zero Addr
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := h.clientIP(r).String(); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
}

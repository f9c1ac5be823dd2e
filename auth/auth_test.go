package auth

import (
	"errors"
	"testing"
	"time"
)

func TestCachedTokenExpires(t *testing.T) {
	now := time.Now()
	v := NewVerifier("0123456789abcdef0123")
	v.now = func() time.Time { return now }
	tok, err := Mint("0123456789abcdef0123", "alice", false, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second is answered from the cache
		if c, err := v.Verify(tok); err != nil || c.Subject != "alice" || c.Admin {
			t.Fatalf("claims %+v, err %v", c, err)
		}
	}
	now = now.Add(time.Minute + leeway + time.Second)
	if _, err := v.Verify(tok); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("an expired token was accepted from the cache: %v", err)
	}
}

func TestCacheNeverHoldsARejectedToken(t *testing.T) {
	v := NewVerifier("0123456789abcdef0123")
	tok, _ := Mint("another-secret-0123456789", "mallory", true, time.Hour, time.Now())
	for range 2 {
		if _, err := v.Verify(tok); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("token signed with another secret: %v", err)
		}
	}
}

func TestCacheStaysBounded(t *testing.T) {
	v := NewVerifier("0123456789abcdef0123")
	now := time.Now()
	for i := range cacheShards * cacheShardSize * 2 {
		tok := string(rune(i)) + "token"
		v.cache.put(tok, v.cache.hash(tok), Claims{Subject: "x"}, now.Add(time.Hour))
	}
	total := 0
	for i := range v.cache.shards {
		total += len(v.cache.shards[i].m)
	}
	if total > cacheShards*cacheShardSize {
		t.Fatalf("%d cached tokens, bound is %d", total, cacheShards*cacheShardSize)
	}
}

// TestCacheHitNeedsTheWholeToken stores a token and asks for another under
// the same hash, as a collision would: only the stored token hits.
func TestCacheHitNeedsTheWholeToken(t *testing.T) {
	var c cache
	now := time.Now()
	c.put("token-a", 42, Claims{Subject: "alice", Admin: true}, now.Add(time.Hour))
	if got, ok := c.get("token-b", 42, now); ok {
		t.Fatalf("another token with the same hash hit the cache: %+v", got)
	}
	if got, ok := c.get("token-a", 42, now); !ok || got.Subject != "alice" {
		t.Fatalf("the stored token missed: %+v %v", got, ok)
	}
}

package auth

import (
	"hash/maphash"
	"sync"
	"time"
)

// cacheShards spreads the verified-token cache over locks, so concurrent
// requests rarely contend.
const cacheShards = 32

// cacheShardSize bounds each shard; a full shard is emptied rather than
// tracked for recency, which keeps the hot path to one map lookup.
const cacheShardSize = 4096

type entry struct {
	claims  Claims
	expires time.Time
}

// cache remembers verified tokens until they expire. Only tokens whose
// signature, algorithm and expiry were checked are ever stored, keyed by
// the whole token, so a hit is exactly as valid as a fresh parse.
type cache struct {
	seed   maphash.Seed
	once   sync.Once
	shards [cacheShards]struct {
		mu sync.RWMutex
		m  map[string]entry
	}
}

func (c *cache) shard(token string) int {
	c.once.Do(func() { c.seed = maphash.MakeSeed() })
	return int(maphash.String(c.seed, token) % cacheShards)
}

func (c *cache) get(token string, now time.Time) (Claims, bool) {
	s := &c.shards[c.shard(token)]
	s.mu.RLock()
	e, ok := s.m[token]
	s.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return Claims{}, false
	}
	return e.claims, true
}

func (c *cache) put(token string, claims Claims, expires time.Time) {
	s := &c.shards[c.shard(token)]
	s.mu.Lock()
	if s.m == nil || len(s.m) >= cacheShardSize {
		s.m = make(map[string]entry, cacheShardSize) // full size at once: growing it rehashed on the hot path
	}
	s.m[token] = entry{claims: claims, expires: expires}
	s.mu.Unlock()
}

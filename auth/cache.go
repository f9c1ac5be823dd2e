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
	token   string // the whole token: equal hashes alone prove nothing
	claims  Claims
	expires time.Time
}

// cache remembers verified tokens until they expire. Only tokens whose
// signature, algorithm and expiry were checked are ever stored, and a hit
// needs the whole token to match, so a hit is exactly as valid as a fresh
// parse. Entries are keyed by the token's hash, computed once per request:
// a string key would hash the ~200-byte token again for every lookup.
type cache struct {
	seed   maphash.Seed
	once   sync.Once
	shards [cacheShards]struct {
		mu sync.RWMutex
		m  map[uint64]entry
	}
}

// hash is the token's key in the cache; the seed is random per process,
// so nobody can make two tokens collide on purpose.
func (c *cache) hash(token string) uint64 {
	c.once.Do(func() { c.seed = maphash.MakeSeed() })
	return maphash.String(c.seed, token)
}

func (c *cache) get(token string, h uint64, now time.Time) (Claims, bool) {
	s := &c.shards[h%cacheShards]
	s.mu.RLock()
	e, ok := s.m[h]
	s.mu.RUnlock()
	if !ok || e.token != token || !now.Before(e.expires) {
		return Claims{}, false
	}
	return e.claims, true
}

func (c *cache) put(token string, h uint64, claims Claims, expires time.Time) {
	s := &c.shards[h%cacheShards]
	s.mu.Lock()
	if s.m == nil || len(s.m) >= cacheShardSize {
		s.m = make(map[uint64]entry, cacheShardSize) // full size at once: growing it rehashed on the hot path
	}
	s.m[h] = entry{token: token, claims: claims, expires: expires}
	s.mu.Unlock()
}

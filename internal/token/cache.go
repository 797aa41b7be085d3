package token

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

const cacheShards = 16

// tokenCache remembers verified tokens by their exact string so a repeated
// token costs no signature check. The cached *Principal is shared: callers
// must treat it as read-only. Revocation is not cached: the Denylist is
// checked on every hit.
type tokenCache struct {
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]cacheShard
}

// cacheShard maps the token's 64-bit hash to its entry; the entry holds
// the token itself, so a hash collision is a miss, never a wrong hit.
// Hashing once serves both the shard choice and the map.
type cacheShard struct {
	mu sync.RWMutex
	m  map[uint64]cacheEntry
}

type cacheEntry struct {
	raw      string
	p        *tollgate.Principal
	deadline int64 // unix nanos after which the token is no longer valid
	// kid and tr name the key that signed the token (tr nil: our own), so
	// a hit is refused once that key is no longer published.
	kid string
	tr  *trusted
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{seed: maphash.MakeSeed(), perShard: max(1, size/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]cacheEntry)
	}
	return c
}

func (c *tokenCache) shard(raw string) (*cacheShard, uint64) {
	h := maphash.String(c.seed, raw)
	return &c.shards[h%cacheShards], h
}

func (c *tokenCache) get(raw string, now time.Time) (cacheEntry, bool) {
	s, h := c.shard(raw)
	s.mu.RLock()
	e, ok := s.m[h]
	s.mu.RUnlock()
	if !ok || e.raw != raw || now.UnixNano() >= e.deadline {
		return cacheEntry{}, false
	}
	return e, true
}

func (c *tokenCache) put(raw string, e cacheEntry, now time.Time) {
	s, h := c.shard(raw)
	e.raw = raw
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= c.perShard {
		s.evict(now.UnixNano(), c.perShard)
	}
	s.m[h] = e
}

// evict drops expired entries, then arbitrary ones until an eighth of the
// shard is free, so a full shard does not evict on every insert.
func (s *cacheShard) evict(now int64, limit int) {
	for k, e := range s.m {
		if now >= e.deadline {
			delete(s.m, k)
		}
	}
	for k := range s.m {
		if len(s.m) < limit-limit/8 {
			return
		}
		delete(s.m, k)
	}
}

func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// prune drops expired entries from every shard.
func (c *tokenCache) prune(now time.Time) {
	n := now.UnixNano()
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if n >= e.deadline {
				delete(s.m, k)
			}
		}
		s.mu.Unlock()
	}
}

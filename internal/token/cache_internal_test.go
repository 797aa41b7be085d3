package token

import (
	"fmt"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestTokenCacheSizeCap(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newTokenCache(160)
	for i := range 10_000 {
		c.put(fmt.Sprintf("tok-%d", i), cacheEntry{p: &tollgate.Principal{}, deadline: now.Add(time.Minute).UnixNano()}, now)
	}
	if n := c.len(); n > 160 {
		t.Fatalf("cache holds %d entries, cap 160", n)
	}
	c.put("expired", cacheEntry{p: &tollgate.Principal{}, deadline: now.Add(-time.Second).UnixNano()}, now)
	if _, ok := c.get("expired", now); ok {
		t.Fatal("expired entry served")
	}
	c.prune(now.Add(2 * time.Minute))
	if n := c.len(); n != 0 {
		t.Fatalf("%d entries after pruning past every deadline", n)
	}
}

func TestTokenCacheCollisionIsMiss(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newTokenCache(16)
	c.put("a", cacheEntry{p: &tollgate.Principal{UserID: "a"}, deadline: now.Add(time.Minute).UnixNano()}, now)
	s, h := c.shard("a")
	s.m[h] = cacheEntry{raw: "b", p: &tollgate.Principal{UserID: "b"}, deadline: now.Add(time.Minute).UnixNano()}
	if _, ok := c.get("a", now); ok {
		t.Fatal("entry of another token served for a colliding hash")
	}
}

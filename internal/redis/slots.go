package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// acquireScript takes a slot under every key or none. Each key is a sorted
// set of lease ids scored by their expiry (ms, Redis clock); expired leases
// (a crashed replica's) are dropped first. ARGV: id, ttl_ms, then each
// key's limit. Returns 0, or the 1-based index of a full key.
const acquireScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, ttl = ARGV[1], tonumber(ARGV[2])
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if not redis.call('ZSCORE', KEYS[i], id) and redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[2+i]) then
    return i
  end
end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now + ttl, id)
  redis.call('PEXPIRE', KEYS[i], ttl * 2)
end
return 0
`

// renewScript extends lease ARGV[1] under every key by ARGV[2] ms.
const renewScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ttl * 2)
end
return 0
`

// Slots is the cluster ConcurrencyStore: leases in sorted sets that expire
// unless renewed, so a crashed replica's slots come back.
type Slots struct {
	db      *DB
	acquire *goredis.Script
	renew   *goredis.Script
}

// Acquire takes a slot for id under every key, or none.
func (s *Slots) Acquire(ctx context.Context, id string, keys []tollgate.SlotKey, ttl time.Duration) (string, error) {
	names := make([]string, len(keys))
	args := []any{id, strconv.FormatInt(ttl.Milliseconds(), 10)}
	for i, k := range keys {
		names[i] = s.db.key(k.Key)
		args = append(args, k.Limit)
	}
	full, err := s.acquire.Run(ctx, s.db.rdb, names, args...).Int()
	if err != nil {
		return "", fmt.Errorf("redis acquire slot: %w", err)
	}
	if full >= 1 && full <= len(keys) {
		return keys[full-1].Key, nil
	}
	return "", nil
}

// Renew extends every lease by ttl in one pipeline.
func (s *Slots) Renew(ctx context.Context, leases map[string][]string, ttl time.Duration) error {
	ms := strconv.FormatInt(ttl.Milliseconds(), 10)
	_, err := s.db.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for id, keys := range leases {
			names := make([]string, len(keys))
			for i, k := range keys {
				names[i] = s.db.key(k)
			}
			s.renew.Eval(ctx, p, names, id, ms)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis renew slots: %w", err)
	}
	return nil
}

// Release frees id's slot under every key.
func (s *Slots) Release(ctx context.Context, id string, keys []string) error {
	_, err := s.db.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, k := range keys {
			p.ZRem(ctx, s.db.key(k), id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis release slot: %w", err)
	}
	return nil
}

// InFlight returns the live leases under key (for tests and /v1/me).
func (s *Slots) InFlight(ctx context.Context, key string) (int, error) {
	n, err := s.db.rdb.ZCount(ctx, s.db.key(key), "("+strconv.FormatInt(time.Now().UnixMilli(), 10), "+inf").Result()
	if err != nil {
		return 0, fmt.Errorf("redis slots: %w", err)
	}
	return int(n), nil
}

package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Counters is the cluster CounterStore: a hash {n, last} per key.
type Counters struct{ db *DB }

// Incr adds one to key in one transaction and returns the new count.
func (c *Counters) Incr(ctx context.Context, key string, now time.Time, ttl time.Duration) (int, error) {
	k := c.db.key(key)
	var incr *goredis.IntCmd
	_, err := c.db.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		incr = p.HIncrBy(ctx, k, "n", 1)
		p.HSet(ctx, k, "last", now.UnixMilli())
		p.PExpire(ctx, k, ttl)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("redis counter: %w", err)
	}
	return int(incr.Val()), nil
}

// Counters returns the counters of keys; absent keys are zero.
func (c *Counters) Counters(ctx context.Context, keys ...string) ([]tollgate.Counter, error) {
	cmds := make([]*goredis.SliceCmd, len(keys))
	_, err := c.db.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HMGet(ctx, c.db.key(k), "n", "last")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis counters: %w", err)
	}
	out := make([]tollgate.Counter, len(keys))
	for i, cmd := range cmds {
		v := cmd.Val()
		if len(v) != 2 {
			continue
		}
		n, _ := v[0].(string)
		last, _ := v[1].(string)
		out[i].Count, _ = strconv.Atoi(n)
		if ms, err := strconv.ParseInt(last, 10, 64); err == nil {
			out[i].Last = time.UnixMilli(ms)
		}
	}
	return out, nil
}

// Delete removes keys.
func (c *Counters) Delete(ctx context.Context, keys ...string) error {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = c.db.key(k)
	}
	if err := c.db.rdb.Del(ctx, names...).Err(); err != nil {
		return fmt.Errorf("redis delete counters: %w", err)
	}
	return nil
}

// Bans is the cluster BanStore: one hash of IP → ban.
type Bans struct{ db *DB }

type banRecord struct {
	Reason    string    `json:"reason,omitempty"`
	Until     time.Time `json:"until"`
	CreatedAt time.Time `json:"created_at"`
}

// PutBan stores b, replacing a ban of the same IP.
func (s *Bans) PutBan(ctx context.Context, b *tollgate.Ban) error {
	v, err := json.Marshal(banRecord{Reason: b.Reason, Until: b.Until, CreatedAt: b.CreatedAt})
	if err != nil {
		return fmt.Errorf("encode ban: %w", err)
	}
	if err := s.db.rdb.HSet(ctx, s.db.key("bans"), b.IP, v).Err(); err != nil {
		return fmt.Errorf("redis put ban: %w", err)
	}
	return nil
}

// DeleteBan lifts the ban of ip. ENotFound if there is none.
func (s *Bans) DeleteBan(ctx context.Context, ip string) error {
	n, err := s.db.rdb.HDel(ctx, s.db.key("bans"), ip).Result()
	if err != nil {
		return fmt.Errorf("redis delete ban: %w", err)
	}
	if n == 0 {
		return tollgate.Errorf(tollgate.ENotFound, "no ban for %s", ip)
	}
	return nil
}

// Bans lists the bans that end after now and removes the others.
func (s *Bans) Bans(ctx context.Context, now time.Time) ([]*tollgate.Ban, error) {
	all, err := s.db.rdb.HGetAll(ctx, s.db.key("bans")).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("redis bans: %w", err)
	}
	var out []*tollgate.Ban
	var expired []string
	for ip, v := range all {
		var r banRecord
		if json.Unmarshal([]byte(v), &r) != nil || !r.Until.After(now) {
			expired = append(expired, ip)
			continue
		}
		out = append(out, &tollgate.Ban{IP: ip, Reason: r.Reason, Until: r.Until, CreatedAt: r.CreatedAt})
	}
	if len(expired) > 0 {
		_ = s.db.rdb.HDel(ctx, s.db.key("bans"), expired...).Err()
	}
	return out, nil
}

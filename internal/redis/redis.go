// Package redis holds tollgate's cluster-mode counters in Redis: GCRA rate
// limits decided for every key of a request in one Lua call, concurrency
// leases, failure counters, the ban set and the pub/sub bus that fans
// revocations and bans out to every replica. It imports only the domain.
package redis

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Options configure a DB.
type Options struct {
	// Prefix starts every key and channel, so deployments (and tests)
	// sharing a Redis never collide. Defaults to "tollgate:".
	Prefix string
	// Timeout bounds dialing, reads and writes, so an unreachable Redis is
	// noticed quickly and the limiter falls back. Defaults to 250ms.
	Timeout time.Duration
}

// DB is a connection to Redis and the stores built on it.
type DB struct {
	rdb    *goredis.Client
	prefix string

	rates    *Rates
	slots    *Slots
	counters *Counters
	bans     *Bans
	bus      *Bus
}

// Open connects to the redis:// URL (it does not wait for Redis to answer;
// use Ping).
func Open(url string, o Options) (*DB, error) {
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	t := cmp.Or(o.Timeout, 250*time.Millisecond)
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = t, t, t
	opt.MaxRetries = -1   // fail fast: the caller falls back
	opt.DialerRetries = 1 // and is told at once when Redis is down
	opt.ContextTimeoutEnabled = true
	db := &DB{rdb: goredis.NewClient(opt), prefix: cmp.Or(o.Prefix, "tollgate:")}
	db.rates = &Rates{db: db, script: goredis.NewScript(rateScript), admit: goredis.NewScript(admitScript),
		seed: goredis.NewScript(seedScript)}
	db.slots = &Slots{db: db, acquire: goredis.NewScript(acquireScript), renew: goredis.NewScript(renewScript)}
	db.counters = &Counters{db: db}
	db.bans = &Bans{db: db}
	db.bus = &Bus{db: db, url: url}
	return db, nil
}

// Ping reports whether Redis answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	return nil
}

// Close closes the connections.
func (db *DB) Close() error { return db.rdb.Close() }

// Rates returns the GCRA rate store.
func (db *DB) Rates() *Rates { return db.rates }

// Slots returns the concurrency store.
func (db *DB) Slots() *Slots { return db.slots }

// Counters returns the failure counter store.
func (db *DB) Counters() *Counters { return db.counters }

// Bans returns the ban store.
func (db *DB) Bans() *Bans { return db.bans }

// Bus returns the pub/sub bus.
func (db *DB) Bus() *Bus { return db.bus }

func (db *DB) key(k string) string { return db.prefix + k }

// Interface guards.
var (
	_ tollgate.RateStore        = (*Rates)(nil)
	_ tollgate.ConcurrencyStore = (*Slots)(nil)
	_ tollgate.CounterStore     = (*Counters)(nil)
	_ tollgate.BanStore         = (*Bans)(nil)
	_ tollgate.Bus              = (*Bus)(nil)
)

// DeletePrefix removes every key under the prefix (tests clean up with it).
func (db *DB) DeletePrefix(ctx context.Context) error {
	iter := db.rdb.Scan(ctx, 0, escapeGlob(db.prefix)+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if err := db.rdb.Del(ctx, iter.Val()).Err(); err != nil {
			return fmt.Errorf("redis delete: %w", err)
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("redis scan: %w", err)
	}
	return nil
}

func escapeGlob(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`).Replace(s)
}

package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/redis"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// protection is the abuse side of a gateway: the event bus between
// replicas, bans, login back-off and the limiter, in process on one node
// and on Redis in cluster mode.
type protection struct {
	redis    *redis.DB // nil on one node
	bus      tollgate.Bus
	bans     *limit.Bans
	guard    *limit.LoginGuard
	limiter  *limit.Limiter
	clientIP func(*http.Request) string
}

// newProtection builds and starts the protection parts; their Stop
// functions are added to g.closers.
func (g *gateway) newProtection(ctx context.Context) (*protection, error) {
	cfg := g.cfg
	p := &protection{clientIP: limit.ClientIPFunc(cfg.Server.TrustedProxies)}
	var (
		rates  tollgate.RateStore
		slots  tollgate.ConcurrencyStore
		counts tollgate.CounterStore
		ping   func(context.Context) error
	)
	if cfg.Redis != "" {
		db, err := redis.Open(cfg.Redis, redis.Options{Prefix: cfg.RedisPrefix})
		if err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		g.closers = append(g.closers, func() { db.Close() })
		p.redis, p.bus = db, db.Bus()
		rates, slots, counts, ping = db.Rates(), db.Slots(), db.Counters(), db.Ping
		if err := db.Ping(ctx); err != nil {
			g.log.Warn("redis unreachable at start; limits fall back until it answers", "err", err)
		}
	} else {
		p.bus = limit.NewMemoryBus()
	}
	p.bans = limit.NewBans(cfg, limit.BanOptions{Store: g.store.Bans, Bus: p.bus, Rates: rates, Audit: g.store.Audit, Logger: g.log})
	if err := p.bans.Start(ctx); err != nil {
		return nil, fmt.Errorf("start bans: %w", err)
	}
	g.closers = append(g.closers, p.bans.Stop)
	p.guard = limit.NewLoginGuard(limit.LoginOptions{Counters: counts, Max: cfg.Protection.LoginBackoffMax})
	var err error
	p.limiter, err = limit.New(cfg, limit.Options{
		Rates: rates, Slots: slots, Ping: ping, Bans: p.bans, ClientIP: p.clientIP,
		Registerer: g.registry, Logger: g.log,
	})
	if err != nil {
		return nil, err
	}
	if err := p.limiter.Start(ctx); err != nil {
		return nil, fmt.Errorf("start limiter: %w", err)
	}
	g.closers = append(g.closers, p.limiter.Stop)
	return p, nil
}

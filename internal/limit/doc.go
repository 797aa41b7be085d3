// Package limit protects the gateway and its upstreams: GCRA rate limits per
// client IP, user, tenant and route; concurrency caps per user and tenant;
// failed-login back-off; IP bans; revocation fan-out to every replica; the
// client IP behind trusted proxies; and a connection cap. On one node every
// counter lives in process; in cluster mode the stores come from
// internal/redis and decisions are exact across replicas, with a local
// fallback (limit ÷ protection.replicas, or refusal) while Redis cannot be
// reached.
//
// # Wiring (cmd/tollgate)
//
// One node:
//
//	bans := limit.NewBans(cfg, limit.BanOptions{Store: sqliteDB.Bans()}) // nil Store: in memory only
//	lim, err := limit.New(cfg, limit.Options{Bans: bans, Registerer: reg})
//	guard := limit.NewLoginGuard(limit.LoginOptions{Max: cfg.Protection.LoginBackoffMax})
//	fan := limit.NewFanout(limit.FanoutOptions{Apply: authService.Apply})
//
// Cluster (rdb, err := redis.Open(cfg.Redis, redis.Options{})):
//
//	bans := limit.NewBans(cfg, limit.BanOptions{Store: pgDB.Bans(), Bus: rdb.Bus(), Rates: rdb.Rates()}) // or Store: rdb.Bans()
//	lim, err := limit.New(cfg, limit.Options{Rates: rdb.Rates(), Slots: rdb.Slots(), Ping: rdb.Ping, Bans: bans, Registerer: reg})
//	guard := limit.NewLoginGuard(limit.LoginOptions{Counters: rdb.Counters(), Max: cfg.Protection.LoginBackoffMax})
//	fan := limit.NewFanout(limit.FanoutOptions{Bus: rdb.Bus(), Apply: authService.Apply,
//		Reload: func(ctx context.Context) error { return denylist.Load(ctx, store.Revocations(), store.Users(), store.Tenants()) }})
//
// Then, in both modes:
//
//	lim.Start(ctx); bans.Start(ctx); fan.Start(ctx)     // Stop() each on shutdown
//	handler = lim.Middleware(mux)                        // bans + per-IP limits before authentication
//	proxy.New(cfg, proxy.Options{Admissions: []tollgate.Admission{lim, …}})
//	auth.Options{Guard: guard, Publish: fan.Publish, ClientIP: limit.ClientIPFunc(cfg.Server.TrustedProxies)}
//	for pattern, h := range bans.Handlers() { adminMux.Handle(pattern, httpx.Handle(log, h)) }
//	limit.Harden(&edgeOptions, cfg.Server); edge.New(edgeOptions).Serve(limit.Listener(ln, cfg.Server.MaxConnections))
//	/readyz details: lim.Status() (mode local, redis, fallback or refusing)
//
// Middleware counts every 401 it sees (outside the login paths) towards the
// ban threshold, so auth.Options.InvalidToken should stay unset to avoid
// counting a token twice. The command line manages bans with Bans.Ban,
// Bans.Lift and Bans.List over the same store and bus.
package limit

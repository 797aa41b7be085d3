package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/meter"
	"github.com/tollgate/tollgate/internal/proxy"
	"github.com/tollgate/tollgate/internal/tollgate"
	"github.com/tollgate/tollgate/internal/web"
)

// newMeter builds and starts the meter over the store's ledger, with live
// budget counters in Redis in cluster mode.
func (g *gateway) newMeter(ctx context.Context) (*meter.Meter, error) {
	opts := meter.Options{
		Ledger: g.store.Ledger, Budgets: g.store.Ledger, Cluster: g.store.Cluster, Logger: g.log, Clock: g.opts.MeterClock,
		HeartbeatInterval: g.opts.Heartbeat,
		Principal:         func(r *http.Request) *tollgate.Principal { return auth.PrincipalFrom(r.Context()) },
	}
	if g.prot.redis != nil {
		opts.Counters = g.prot.redis.BudgetCounters()
	}
	m, err := meter.New(g.cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("meter: %w", err)
	}
	if err := m.Start(ctx); err != nil {
		return nil, fmt.Errorf("start meter: %w", err)
	}
	g.closers = append(g.closers, m.Stop)
	return m, nil
}

// dataPlane builds the proxy for the configured routes, with limits and
// then budgets and the ledger in front of every upstream call. It returns
// the handler and the function that starts draining it.
func (g *gateway) dataPlane(ctx context.Context) (http.Handler, func(), error) {
	p, err := proxy.New(g.cfg, proxy.Options{
		Auth:       g.identity.auth.CookieRoutes(g.cfg.Routes),
		Admissions: []tollgate.Admission{g.prot.limiter, g.meter},
		Logger:     g.log,
		Metrics:    g.registry,
		ClientIP:   g.prot.clientIP,
		// The pages of native UIs opened with the cookie get the CSRF
		// token their own calls need.
		SessionPage: web.SessionPage,
		Native:      g.nativeRoutes(),
		InternalToken: func(ctx context.Context, pr *tollgate.Principal, aud string) (string, error) {
			tok, _, err := g.identity.issuer.IssueInternal(ctx, pr, aud)
			return tok, err
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("data plane: %w", err)
	}
	if err := p.Start(ctx); err != nil {
		return nil, nil, fmt.Errorf("start data plane: %w", err)
	}
	g.closers = append(g.closers, p.Stop)
	return p, p.Drain, nil
}

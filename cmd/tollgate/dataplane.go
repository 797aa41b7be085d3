package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/tollgate/tollgate/internal/proxy"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// dataPlane builds the proxy for the configured routes, with the
// admissions (limits, budgets, ledger) in front of every upstream call. It
// returns the handler and the function that starts draining it.
func (g *gateway) dataPlane(ctx context.Context) (http.Handler, func(), error) {
	var admissions []tollgate.Admission
	p, err := proxy.New(g.cfg, proxy.Options{
		Auth:       g.identity.auth,
		Admissions: admissions,
		Logger:     g.log,
		Metrics:    g.registry,
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

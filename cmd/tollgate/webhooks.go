package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
	"github.com/tollgate/tollgate/internal/webhook"
)

// mountWebhooks starts webhook delivery (g.webhooks, which resumes the
// messages a previous run left in the store) and serves GET
// /v1/webhooks/default/secret: each caller's own signing secret, sealed at
// rest with the key passphrase when one is configured.
func (g *gateway) mountWebhooks(ctx context.Context, mux httpx.Mux) error {
	pass, err := passphrase(g.cfg, g.opts.Env)
	if err != nil {
		return err
	}
	secrets := webhook.NewSecrets(g.store.Webhooks, pass, nil)
	svc, err := webhook.New(webhook.Config{Secrets: secrets, Store: g.store.Webhooks,
		AllowPrivate: g.cfg.WebhookAllowPrivate, Logger: g.log, Registerer: g.registry})
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	if err := svc.Start(ctx); err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	g.closers = append(g.closers, svc.Stop)
	g.webhooks = svc
	principal := func(r *http.Request) *tollgate.Principal { return auth.PrincipalFrom(r.Context()) }
	h := webhook.SecretHandler(secrets, principal)
	mux.Handle("GET /v1/webhooks/default/secret", g.identity.auth.Require(httpx.Handle(g.log, h)))
	return nil
}

package main

import (
	"net/http"

	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
	"github.com/tollgate/tollgate/internal/webhook"
)

// mountWebhooks serves GET /v1/webhooks/default/secret: each caller's own
// webhook signing secret, sealed at rest with the key passphrase when one
// is configured.
func (g *gateway) mountWebhooks(mux httpx.Mux) error {
	pass, err := passphrase(g.cfg, g.opts.Env)
	if err != nil {
		return err
	}
	g.webhookSecrets = webhook.NewSecrets(g.store.Webhooks, pass, nil)
	principal := func(r *http.Request) *tollgate.Principal { return auth.PrincipalFrom(r.Context()) }
	h := webhook.SecretHandler(g.webhookSecrets, principal)
	mux.Handle("GET /v1/webhooks/default/secret", g.identity.auth.Require(httpx.Handle(g.log, h)))
	return nil
}

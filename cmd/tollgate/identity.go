package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// identity is the token side of a gateway: keys, issuer, verifier,
// refresh tokens and the HTTP identity service.
type identity struct {
	access, internal *token.KeyManager
	issuer           *token.Issuer
	verifier         *token.Verifier
	refresher        *token.Refresher
	auth             *auth.Service
	fanout           *limit.Fanout
	stopWatch        context.CancelFunc
	watchDone        chan struct{}
}

// watchInterval is how often the revocation state and the signing keys
// are reloaded from the store, so that a revocation or key rotation made by
// the CLI or by a replica that missed the fan-out takes effect within a
// second.
const watchInterval = 500 * time.Millisecond

// watch reloads the denylist from the store until Stop.
func (id *identity) watch(store tollgate.Store, log *slog.Logger) {
	ctx, cancel := context.WithCancel(context.Background())
	id.stopWatch, id.watchDone = cancel, make(chan struct{})
	go func() {
		defer close(id.watchDone)
		t := time.NewTicker(watchInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := id.verifier.Denylist().Load(ctx, store.Revocations(), store.Users(), store.Tenants()); err != nil && ctx.Err() == nil {
					log.Warn("reload revocations", "err", err)
				}
				// Keys rotated by the CLI or another replica are
				// published here too (known keys are not decrypted again).
				for _, km := range []*token.KeyManager{id.access, id.internal} {
					if err := km.Reload(ctx); err != nil && ctx.Err() == nil {
						log.Warn("reload signing keys", "purpose", km.Purpose(), "err", err)
					}
				}
			}
		}
	}()
}

// keyManagers opens the access and internal key sets, generating the first
// keys on first start.
func keyManagers(ctx context.Context, cfg *config.Config, store tollgate.Store, pass string, log *slog.Logger) (access, internal *token.KeyManager, err error) {
	opts := token.KeyOptions{
		Algorithm: cfg.Tokens.Algorithm, Passphrase: pass, PublishDelay: cfg.Tokens.RotationDelay,
		TokenTTL: max(cfg.Tokens.AccessTTL, 24*time.Hour), Leeway: cfg.Tokens.Leeway, Logger: log,
	}
	opts.Purpose = token.PurposeAccess
	if access, err = token.NewKeyManager(ctx, store.SigningKeys(), opts); err != nil {
		return nil, nil, fmt.Errorf("access keys: %w", err)
	}
	opts.Purpose = token.PurposeInternal
	if internal, err = token.NewKeyManager(ctx, store.SigningKeys(), opts); err != nil {
		return nil, nil, fmt.Errorf("internal keys: %w", err)
	}
	return access, internal, nil
}

// budgetFunc reports the caller's budget state for /v1/me.
type budgetFunc = func(context.Context, *tollgate.Principal) (any, error)

func newIdentity(ctx context.Context, cfg *config.Config, store *engines, prot *protection, budget budgetFunc, env Env, log *slog.Logger) (*identity, error) {
	pass, err := passphrase(cfg, env)
	if err != nil {
		return nil, err
	}
	id := &identity{}
	if id.access, id.internal, err = keyManagers(ctx, cfg, store, pass, log); err != nil {
		return nil, err
	}
	if err := id.access.Start(ctx); err != nil {
		return nil, fmt.Errorf("start access keys: %w", err)
	}
	if err := id.internal.Start(ctx); err != nil {
		id.access.Stop()
		return nil, fmt.Errorf("start internal keys: %w", err)
	}
	id.issuer, err = token.NewIssuer(id.access, id.internal, token.IssuerOptions{
		Issuer: cfg.PublicURL, Audience: cfg.Tokens.Audience, TTL: cfg.Tokens.AccessTTL,
	})
	if err != nil {
		id.Stop()
		return nil, err
	}
	deny := token.NewDenylist(nil)
	if err := deny.Load(ctx, store.Revocations(), store.Users(), store.Tenants()); err != nil {
		id.Stop()
		return nil, err
	}
	var trusted []token.TrustedIssuer
	for _, ti := range cfg.TrustedIssuers {
		trusted = append(trusted, token.TrustedIssuer{
			Issuer: ti.Issuer, JWKSURL: ti.JWKSURL, Audience: ti.Audience, Algorithms: ti.Algorithms,
			Typ: ti.Typ, DefaultPlan: ti.DefaultPlan, RefreshInterval: ti.RefreshInterval, MaxStale: ti.MaxStale,
			Claims: token.ClaimsMapping{TenantID: ti.Claims["tenant_id"], Role: ti.Claims["role"], Scope: ti.Claims["scope"], Plan: ti.Claims["plan"]},
		})
	}
	id.verifier, err = token.NewVerifier(token.VerifierOptions{
		Issuer: cfg.PublicURL, Audience: cfg.Tokens.Audience, Keys: id.access, Trusted: trusted,
		Denylist: deny, Leeway: cfg.Tokens.Leeway, CacheSize: cfg.Tokens.CacheSize, Logger: log,
	})
	if err != nil {
		id.Stop()
		return nil, err
	}
	if err := id.verifier.Start(ctx); err != nil {
		id.Stop()
		return nil, fmt.Errorf("start verifier: %w", err)
	}
	id.refresher = token.NewRefresher(store.RefreshTokens(), token.RefreshOptions{
		IdleTTL: cfg.Tokens.RefreshIdleTTL, AbsoluteTTL: cfg.Tokens.RefreshTTL,
	})
	id.auth, err = auth.New(auth.Options{
		Config: cfg, Store: store, Issuer: id.issuer, Verifier: id.verifier, Refresher: id.refresher,
		AccessKeys: id.access, InternalKeys: id.internal, Logger: log,
		Guard: prot.guard, Publish: prot.bus.Publish, ClientIP: prot.clientIP, Budget: budget, Audit: store.Audit,
	})
	if err != nil {
		id.Stop()
		return nil, err
	}
	id.fanout = limit.NewFanout(limit.FanoutOptions{
		Bus: prot.bus, Apply: id.auth.Apply, Logger: log,
		Reload: func(ctx context.Context) error {
			return deny.Load(ctx, store.Revocations(), store.Users(), store.Tenants())
		},
	})
	if err := id.fanout.Start(ctx); err != nil {
		id.Stop()
		return nil, fmt.Errorf("start revocation fan-out: %w", err)
	}
	id.watch(store, log)
	return id, nil
}

// Stop ends the background work of keys and verifier.
func (id *identity) Stop() {
	if id.stopWatch != nil {
		id.stopWatch()
		<-id.watchDone
	}
	if id.fanout != nil {
		id.fanout.Stop()
	}
	if id.verifier != nil {
		id.verifier.Stop()
	}
	if id.access != nil {
		id.access.Stop()
	}
	if id.internal != nil {
		id.internal.Stop()
	}
}

// Package auth is the gateway's identity edge: login, the OAuth token and
// revocation endpoints, discovery, /v1/me, and the Authenticator that turns
// a request's bearer token or API key into a verified principal.
package auth

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// LoginGuard slows down password guessing (internal/limit implements it).
type LoginGuard interface {
	// Check returns ERateLimited (with RetryAfter) while account or ip is
	// backing off.
	Check(ctx context.Context, account, ip string) error
	Failed(ctx context.Context, account, ip string) error
	Succeeded(ctx context.Context, account, ip string) error
}

// Options configure a Service. Config, Store, Issuer, Verifier, Refresher
// and AccessKeys are required.
type Options struct {
	Config     *config.Config
	Store      tollgate.Store
	Issuer     *token.Issuer
	Verifier   *token.Verifier
	Refresher  *token.Refresher
	AccessKeys *token.KeyManager
	// InternalKeys, when set, publishes the keys of the short-lived tokens
	// sent to upstreams at /.well-known/internal-jwks.json.
	InternalKeys *token.KeyManager
	// Hasher checks passwords. Defaults to NewHasher(2).
	Hasher *Hasher
	// Guard, when set, backs off failed logins.
	Guard LoginGuard
	// Publish, when set, fans a revocation out to every replica (this one
	// has applied it already).
	Publish func(context.Context, tollgate.Event) error
	// ClientIP returns the caller's address. Defaults to the peer address.
	ClientIP func(*http.Request) string
	// Audit, when set, records logins, token requests and revocations
	// (best-effort: a failure to record is logged, not answered).
	Audit tollgate.AuditStore
	// Budget, when set, adds the caller's budget state to /v1/me.
	Budget func(ctx context.Context, p *tollgate.Principal) (any, error)
	// HTTPClient talks to single sign-on providers. Defaults to a client
	// with a 10 s timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time
}

// Service serves the identity endpoints.
type Service struct {
	opts         Options
	keys         *apiKeyCache
	discover     []byte
	sessions     sessionCache
	renew        renewals
	publicOrigin string
	sso          []*ssoIssuer // trusted issuers offering login, by index
}

// New returns a Service.
func New(opts Options) (*Service, error) {
	switch {
	case opts.Config == nil, opts.Store == nil, opts.Issuer == nil, opts.Verifier == nil, opts.Refresher == nil, opts.AccessKeys == nil:
		return nil, fmt.Errorf("auth: config, store, issuer, verifier, refresher and access keys are required")
	}
	opts.Hasher = cmp.Or(opts.Hasher, NewHasher(2))
	opts.Logger = cmp.Or(opts.Logger, slog.New(slog.DiscardHandler))
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.ClientIP == nil {
		opts.ClientIP = peerIP
	}
	s := &Service{opts: opts}
	s.keys = newAPIKeyCache(opts.Store, opts.Now)
	s.discover = discoveryDocument(opts.Config)
	s.publicOrigin = originOf(opts.Config.PublicURL)
	if err := s.newSSO(); err != nil {
		return nil, err
	}
	return s, nil
}

// Register mounts the identity endpoints on mux.
func (s *Service) Register(mux httpx.Mux) {
	log := s.opts.Logger
	mux.Handle("POST /auth/login", httpx.Handle(log, s.login))
	mux.Handle("POST /oauth/token", httpx.Handle(log, s.oauthToken))
	mux.Handle("POST /oauth/revoke", httpx.Handle(log, s.revoke))
	mux.Handle("GET /.well-known/jwks.json", http.HandlerFunc(s.jwks))
	mux.Handle("GET /.well-known/openid-configuration", http.HandlerFunc(s.discovery))
	if s.opts.InternalKeys != nil {
		mux.Handle("GET /.well-known/internal-jwks.json", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJWKS(w, s.opts.InternalKeys.JWKS())
		}))
	}
	mux.Handle("GET /v1/me", s.Require(httpx.Handle(log, s.me)))
	mux.Handle("GET /login", http.HandlerFunc(s.loginPage))
	mux.Handle("POST /login", http.HandlerFunc(s.loginForm))
	mux.Handle("POST /logout", http.HandlerFunc(s.logout))
	mux.Handle("GET /login/sso/{n}", http.HandlerFunc(s.ssoStart))
	mux.Handle("GET /login/sso/callback", http.HandlerFunc(s.ssoCallback))
}

package auth

import (
	"context"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// apiKeyTTL bounds how long a verified API key is trusted without a store
// lookup; a revoked key is refused within this time on every replica.
const apiKeyTTL = time.Second

var _ tollgate.Authenticator = (*Service)(nil)

// Authenticate verifies the request's bearer credential: an access token
// (tollgate's or a trusted issuer's) or an API key (tg_…), so OpenAI SDKs
// can use an API key as their api_key. EUnauthorized otherwise.
func (s *Service) Authenticate(ctx context.Context, r *http.Request) (*tollgate.Principal, error) {
	raw, ok := bearer(r)
	if !ok {
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "missing bearer token")
	}
	if token.IsAPIKey(raw) {
		return s.apiKeyPrincipal(ctx, raw)
	}
	return s.opts.Verifier.Verify(ctx, raw)
}

// principalKey is the context key of the verified principal.
type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *tollgate.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal Require put in the request context.
func PrincipalFrom(ctx context.Context) *tollgate.Principal {
	p, _ := ctx.Value(principalKey{}).(*tollgate.Principal)
	return p
}

// Require authenticates every request before next, answering 401 itself.
// A request RequireSession already let through (the dashboard's calls
// under /ui/api/) keeps its session's principal.
func (s *Service) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if PrincipalFrom(r.Context()) != nil {
			next.ServeHTTP(w, r)
			return
		}
		p, err := s.Authenticate(r.Context(), r)
		if err != nil {
			httpx.WriteError(w, r, s.opts.Logger, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// RequireRole is Require plus a role check (403 otherwise).
func (s *Service) RequireRole(role string, next http.Handler) http.Handler {
	return s.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := PrincipalFrom(r.Context()); p.Role != role {
			httpx.WriteError(w, r, s.opts.Logger, tollgate.Errorf(tollgate.EForbidden, "role %s required", role))
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// bearer extracts the token of an "Authorization: Bearer …" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	raw := strings.TrimSpace(h[7:])
	return raw, raw != ""
}

// apiKeyPrincipal checks an API key against its stored hash and its user.
func (s *Service) apiKeyPrincipal(ctx context.Context, raw string) (*tollgate.Principal, error) {
	user, err := s.keys.check(ctx, raw)
	if err != nil {
		return nil, err
	}
	return s.principalOf(user, ""), s.opts.Verifier.Denylist().Check(s.principalOf(user, ""))
}

// principalOf builds the principal of one of tollgate's own users.
func (s *Service) principalOf(u *tollgate.User, jti string) *tollgate.Principal {
	cfg := s.opts.Config
	now := s.opts.Now()
	return &tollgate.Principal{
		Issuer: cfg.PublicURL, UserID: u.ID, TenantID: u.TenantID, Role: u.Role,
		Scopes: cfg.Scopes(u.Role, u.Plan), Plan: cfg.PlanName(u.Plan), JTI: jti,
		IssuedAt: now, Expires: now.Add(apiKeyTTL),
	}
}

// apiKeyCache remembers verified API keys for apiKeyTTL so a busy key costs
// one store lookup a second, not one a request.
type apiKeyCache struct {
	store tollgate.Store
	now   func() time.Time
	mu    sync.Mutex
	items map[string]apiKeyEntry
}

type apiKeyEntry struct {
	hash []byte
	user *tollgate.User
	at   time.Time
}

func newAPIKeyCache(store tollgate.Store, now func() time.Time) *apiKeyCache {
	return &apiKeyCache{store: store, now: now, items: map[string]apiKeyEntry{}}
}

func (c *apiKeyCache) check(ctx context.Context, raw string) (*tollgate.User, error) {
	invalid := tollgate.Errorf(tollgate.EUnauthorized, "invalid API key")
	id, hash, err := token.ParseAPIKey(raw)
	if err != nil {
		return nil, invalid
	}
	now := c.now()
	c.mu.Lock()
	e, ok := c.items[id]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < apiKeyTTL {
		if subtle.ConstantTimeCompare(e.hash, hash) != 1 {
			return nil, invalid
		}
		return e.user, nil
	}
	key, err := c.store.APIKeys().APIKey(ctx, id)
	if tollgate.ErrorCode(err) == tollgate.ENotFound {
		return nil, invalid
	} else if err != nil {
		return nil, err
	}
	if key.Revoked || subtle.ConstantTimeCompare(key.Hash, hash) != 1 {
		return nil, invalid
	}
	user, err := c.store.Users().User(ctx, key.UserID)
	if err != nil {
		return nil, invalid
	}
	if user.Disabled {
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "user disabled")
	}
	_ = c.store.APIKeys().TouchAPIKey(ctx, id, now)
	c.mu.Lock()
	if len(c.items) > 10_000 {
		clear(c.items)
	}
	c.items[id] = apiKeyEntry{hash: key.Hash, user: user, at: now}
	c.mu.Unlock()
	return user, nil
}

func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

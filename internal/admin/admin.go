// Package admin serves the admin API under /admin/v1/ (role admin): users,
// tenants, API keys, plans, revocation, bans and the audit trail. Other
// features (usage, budgets) mount their own handlers through Mount.
//
// Every change made here is stored with its audit event in one
// transaction: a change whose event cannot be written is not made.
package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// Prefix of every admin path.
const Prefix = "/admin/v1"

// Options configure the admin API. Config, Store, Audit and Auth are
// required.
type Options struct {
	Config *config.Config
	Store  tollgate.Store
	// Audit keeps the audit trail, on the same database as Store.
	Audit tollgate.AuditStore
	Auth  *auth.Service
	// Bans, when set, serves POST /bans and DELETE /bans/{ip...} (the
	// caller mounts GET /bans).
	Bans Bans
	// ClientIP returns the caller's address for the audit trail. Defaults
	// to the peer address.
	ClientIP func(*http.Request) string
	// Hasher hashes passwords of users created here. Defaults to
	// auth.NewHasher(1).
	Hasher *auth.Hasher
	Logger *slog.Logger
	Now    func() time.Time
}

// API is the admin API.
type API struct {
	opts Options
	mux  *http.ServeMux
}

// New returns the admin API.
func New(opts Options) *API {
	opts.Hasher = cmp.Or(opts.Hasher, auth.NewHasher(1))
	opts.Logger = cmp.Or(opts.Logger, slog.New(slog.DiscardHandler))
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ClientIP == nil {
		opts.ClientIP = peerIP
	}
	a := &API{opts: opts, mux: http.NewServeMux()}
	a.handle("GET /users", a.listUsers)
	a.handle("POST /users", a.createUser)
	a.handle("GET /users/{id}", a.getUser)
	a.handle("PATCH /users/{id}", a.updateUser)
	a.handle("POST /users/{id}/disable", a.setDisabled(true))
	a.handle("POST /users/{id}/enable", a.setDisabled(false))
	a.handle("POST /users/{id}/revoke", a.revokeUser)
	a.handle("GET /users/{id}/keys", a.listKeys)
	a.handle("POST /users/{id}/keys", a.createKey)
	a.handle("DELETE /keys/{id}", a.revokeKey)
	a.handle("GET /tenants", a.listTenants)
	a.handle("POST /tenants", a.createTenant)
	a.handle("GET /tenants/{id}", a.getTenant)
	a.handle("PATCH /tenants/{id}", a.updateTenant)
	a.handle("POST /tenants/{id}/disable", a.setTenantDisabled(true))
	a.handle("POST /tenants/{id}/enable", a.setTenantDisabled(false))
	a.handle("GET /plans", a.listPlans)
	a.handle("POST /revocations", a.revokeToken)
	a.handle("GET /audit", a.listAudit)
	if opts.Bans != nil {
		a.handle("POST /bans", a.addBan)
		a.handle("DELETE /bans/{ip...}", a.liftBan)
	}
	return a
}

// Mount adds a handler of another feature at "METHOD /path" below Prefix.
// A change (any method but GET) is audited before it runs: it is refused
// when its audit event cannot be stored.
func (a *API) Mount(pattern string, h httpx.HandlerFunc) {
	if method, _, _ := cutPattern(pattern); method != http.MethodGet {
		h = a.recordedFirst(h)
	}
	a.handle(pattern, h)
}

func (a *API) handle(pattern string, h httpx.HandlerFunc) {
	method, path, _ := cutPattern(pattern)
	a.mux.Handle(method+" "+Prefix+path, httpx.Handle(a.opts.Logger, h))
}

// Register mounts the admin API on mux behind authentication and the
// admin role.
func (a *API) Register(mux httpx.Mux) {
	mux.Handle(Prefix+"/", a.requireAdmin(a.mux))
}

func cutPattern(p string) (method, path string, ok bool) {
	for i := range len(p) {
		if p[i] == ' ' {
			return p[:i], p[i+1:], true
		}
	}
	return "", p, false
}

// decode reads a JSON body strictly into v.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return tollgate.Errorf(tollgate.EInvalid, "invalid JSON body: %v", err)
	}
	return nil
}

func (a *API) listPlans(w http.ResponseWriter, _ *http.Request) error {
	type plan struct {
		Name string `json:"name"`
		config.Plan
	}
	var out []plan
	for name, p := range a.opts.Config.Plans {
		out = append(out, plan{Name: name, Plan: p})
	}
	slices.SortFunc(out, func(x, y plan) int { return cmp.Compare(x.Name, y.Name) })
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"plans": out, "default_plan": a.opts.Config.DefaultPlan})
	return nil
}

// revokeToken revokes one access token by jti:
// {"jti":"…","issuer":"…","expires_at":"RFC 3339"}; issuer defaults to
// tollgate's own, expires_at to now + the longest token lifetime.
func (a *API) revokeToken(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		JTI       string    `json:"jti"`
		Issuer    string    `json:"issuer"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.JTI == "" {
		return tollgate.Errorf(tollgate.EInvalid, "jti is required")
	}
	if req.ExpiresAt.IsZero() {
		req.ExpiresAt = a.opts.Now().Add(24 * time.Hour)
	}
	iss := cmp.Or(req.Issuer, a.opts.Config.PublicURL)
	ev := &tollgate.AuditEvent{Action: tollgate.AuditRevoke, Target: "jti " + req.JTI, Detail: "issuer " + iss}
	err := a.change(r, ev, func(tx tollgate.AuditTx) (commitFunc, error) {
		return a.opts.Auth.RevokeTokenIn(r.Context(), tx, iss, req.JTI, req.ExpiresAt)
	})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"revoked": req.JTI})
	return nil
}

// userOr404 loads a user by id.
func (a *API) userOr404(ctx context.Context, id string) (*tollgate.User, error) {
	return a.opts.Store.Users().User(ctx, id)
}

func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

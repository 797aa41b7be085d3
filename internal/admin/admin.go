// Package admin serves the admin API under /admin/v1/ (role admin): users,
// tenants, API keys, plans and revocation. Other features (usage, bans)
// mount their own handlers through Mount.
package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
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

// Options configure the admin API. Config, Store and Auth are required.
type Options struct {
	Config *config.Config
	Store  tollgate.Store
	Auth   *auth.Service
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
	a := &API{opts: opts, mux: http.NewServeMux()}
	a.Mount("GET /users", a.listUsers)
	a.Mount("POST /users", a.createUser)
	a.Mount("GET /users/{id}", a.getUser)
	a.Mount("PATCH /users/{id}", a.updateUser)
	a.Mount("POST /users/{id}/disable", a.setDisabled(true))
	a.Mount("POST /users/{id}/enable", a.setDisabled(false))
	a.Mount("POST /users/{id}/revoke", a.revokeUser)
	a.Mount("GET /users/{id}/keys", a.listKeys)
	a.Mount("POST /users/{id}/keys", a.createKey)
	a.Mount("DELETE /keys/{id}", a.revokeKey)
	a.Mount("GET /tenants", a.listTenants)
	a.Mount("POST /tenants", a.createTenant)
	a.Mount("GET /plans", a.listPlans)
	a.Mount("POST /revocations", a.revokeToken)
	return a
}

// Mount adds a handler at "METHOD /path" below Prefix.
func (a *API) Mount(pattern string, h httpx.HandlerFunc) {
	method, path, _ := cutPattern(pattern)
	a.mux.Handle(method+" "+Prefix+path, httpx.Handle(a.opts.Logger, a.audited(h)))
}

// Register mounts the admin API on mux behind authentication and the
// admin role.
func (a *API) Register(mux httpx.Mux) {
	mux.Handle(Prefix+"/", a.opts.Auth.RequireRole("admin", a.mux))
}

// audited logs every change an admin makes (never a body or a secret).
func (a *API) audited(h httpx.HandlerFunc) httpx.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := h(w, r)
		if r.Method != http.MethodGet {
			p := auth.PrincipalFrom(r.Context())
			a.opts.Logger.InfoContext(r.Context(), "audit", "actor", p.UserID, "method", r.Method, "path", r.URL.Path,
				"outcome", cmp.Or(tollgate.ErrorCode(err), "ok"))
		}
		return err
	}
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
	if err := a.opts.Auth.RevokeToken(r.Context(), cmp.Or(req.Issuer, a.opts.Config.PublicURL), req.JTI, req.ExpiresAt); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"revoked": req.JTI})
	return nil
}

// userOr404 loads a user by id.
func (a *API) userOr404(ctx context.Context, id string) (*tollgate.User, error) {
	return a.opts.Store.Users().User(ctx, id)
}

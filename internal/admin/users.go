package admin

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// userView is a user as the admin API shows it: never the password hash.
type userView struct {
	ID               string     `json:"id"`
	Name             string     `json:"name"`
	TenantID         string     `json:"tenant_id"`
	Role             string     `json:"role"`
	Plan             string     `json:"plan"`
	Disabled         bool       `json:"disabled"`
	TokensValidAfter *time.Time `json:"tokens_valid_after,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
}

func (a *API) view(u *tollgate.User) userView {
	v := userView{ID: u.ID, Name: u.Name, TenantID: u.TenantID, Role: u.Role, Plan: a.opts.Config.PlanName(u.Plan), Disabled: u.Disabled, CreatedAt: u.CreatedAt}
	if !u.TokensValidAfter.IsZero() {
		t := u.TokensValidAfter
		v.TokensValidAfter = &t
	}
	return v
}

// CreateUser checks role and plan against the config, creates the tenant
// when missing, and stores the user with an argon2id password hash. The
// CLI and the admin API both create users through it.
func CreateUser(ctx context.Context, cfg *config.Config, store tollgate.Store, h *auth.Hasher, name, password, tenant, role, plan string) (*tollgate.User, error) {
	u, err := NewUser(ctx, cfg, h, name, password, tenant, role, plan)
	if err != nil {
		return nil, err
	}
	if err := StoreUser(ctx, store, u); err != nil {
		return nil, err
	}
	return u, nil
}

// NewUser checks a new user against the config and hashes its password;
// StoreUser stores it.
func NewUser(ctx context.Context, cfg *config.Config, h *auth.Hasher, name, password, tenant, role, plan string) (*tollgate.User, error) {
	switch {
	case name == "" || len(name) > 128 || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return nil, tollgate.Errorf(tollgate.EInvalid, "name must be 1-128 printable characters")
	case len(password) < 8:
		return nil, tollgate.Errorf(tollgate.EInvalid, "password must have at least 8 characters")
	case tenant == "":
		return nil, tollgate.Errorf(tollgate.EInvalid, "tenant is required")
	}
	if _, ok := cfg.Roles[role]; !ok {
		return nil, tollgate.Errorf(tollgate.EInvalid, "unknown role %q; configured roles: %s", role, strings.Join(sortedKeys(cfg.Roles), ", "))
	}
	if _, ok := cfg.Plans[cfg.PlanName(plan)]; !ok {
		return nil, tollgate.Errorf(tollgate.EInvalid, "unknown plan %q; configured plans: %s", plan, strings.Join(sortedKeys(cfg.Plans), ", "))
	}
	hash, err := h.Hash(ctx, password)
	if err != nil {
		return nil, err
	}
	return &tollgate.User{Name: name, TenantID: tenant, Role: role, Plan: plan, PasswordHash: hash}, nil
}

// userStores are the stores StoreUser writes: the gateway's store or an
// audited transaction.
type userStores interface {
	Tenants() tollgate.TenantStore
	Users() tollgate.UserStore
}

// StoreUser stores u, creating its tenant when missing.
func StoreUser(ctx context.Context, st userStores, u *tollgate.User) error {
	if t, err := st.Tenants().Tenant(ctx, u.TenantID); tollgate.ErrorCode(err) == tollgate.ENotFound {
		if err := st.Tenants().CreateTenant(ctx, &tollgate.Tenant{ID: u.TenantID, Name: u.TenantID}); err != nil && tollgate.ErrorCode(err) != tollgate.EConflict {
			return fmt.Errorf("create tenant: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("find tenant: %w", err)
	} else {
		u.TenantID = t.ID
	}
	if err := st.Users().CreateUser(ctx, u); err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	return nil
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) error {
	users, err := a.opts.Store.Users().Users(r.Context(), r.URL.Query().Get("tenant"))
	if err != nil {
		return err
	}
	out := make([]userView, 0, len(users))
	for _, u := range users {
		out = append(out, a.view(u))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"users": out})
	return nil
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name     string `json:"name"`
		Password string `json:"password"`
		Tenant   string `json:"tenant"`
		Role     string `json:"role"`
		Plan     string `json:"plan"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Role == "" {
		req.Role = "user"
	}
	ev := &tollgate.AuditEvent{Action: tollgate.AuditUserCreate, Detail: fmt.Sprintf("name=%s tenant=%s role=%s plan=%s", req.Name, req.Tenant, req.Role, a.opts.Config.PlanName(req.Plan))}
	u, err := NewUser(r.Context(), a.opts.Config, a.opts.Hasher, req.Name, req.Password, req.Tenant, req.Role, req.Plan)
	if err == nil {
		err = a.change(r, ev, func(tx tollgate.AuditTx) (commitFunc, error) {
			err := StoreUser(r.Context(), tx, u)
			ev.Target = u.ID
			return nil, err
		})
	} else {
		a.refused(r, ev, err)
	}
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, a.view(u))
	return nil
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := a.userOr404(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, a.view(u))
	return nil
}

// updateUser changes role, plan or password: {"role","plan","password"}.
func (a *API) updateUser(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	ev := &tollgate.AuditEvent{Action: tollgate.AuditUserUpdate, Target: id}
	req, upd, err := a.userUpdate(r)
	if err != nil {
		a.refused(r, ev, err)
		return err
	}
	var changed []string
	if req.Role != nil {
		changed = append(changed, "role="+*req.Role)
	}
	if req.Plan != nil {
		changed = append(changed, "plan="+*req.Plan)
	}
	if req.Password != nil {
		changed = append(changed, "password changed")
	}
	ev.Detail = strings.Join(changed, " ")
	var u *tollgate.User
	err = a.change(r, ev, func(tx tollgate.AuditTx) (commitFunc, error) {
		var err error
		if u, err = tx.Users().UpdateUser(r.Context(), id, upd); err != nil || len(changed) == 0 {
			return nil, err
		}
		// Tokens carry role, plan and scopes: make the user log in again.
		return a.opts.Auth.RevokeUserIn(r.Context(), tx, u.ID)
	})
	if err != nil {
		return err
	}
	if len(changed) > 0 {
		if u, err = a.opts.Store.Users().User(r.Context(), id); err != nil {
			return err
		}
	}
	httpx.WriteJSON(w, http.StatusOK, a.view(u))
	return nil
}

// userUpdate reads and checks the body of PATCH /users/{id}, hashing a new
// password.
func (a *API) userUpdate(r *http.Request) (req userPatch, upd tollgate.UserUpdate, err error) {
	if err := decode(r, &req); err != nil {
		return req, upd, err
	}
	cfg := a.opts.Config
	upd = tollgate.UserUpdate{Role: req.Role, Plan: req.Plan}
	if req.Role != nil {
		if _, ok := cfg.Roles[*req.Role]; !ok {
			return req, upd, tollgate.Errorf(tollgate.EInvalid, "unknown role %q; configured roles: %s", *req.Role, strings.Join(sortedKeys(cfg.Roles), ", "))
		}
	}
	if req.Plan != nil {
		if _, ok := cfg.Plans[cfg.PlanName(*req.Plan)]; !ok {
			return req, upd, tollgate.Errorf(tollgate.EInvalid, "unknown plan %q; configured plans: %s", *req.Plan, strings.Join(sortedKeys(cfg.Plans), ", "))
		}
	}
	if req.Password != nil {
		if len(*req.Password) < 8 {
			return req, upd, tollgate.Errorf(tollgate.EInvalid, "password must have at least 8 characters")
		}
		hash, err := a.opts.Hasher.Hash(r.Context(), *req.Password)
		if err != nil {
			return req, upd, err
		}
		upd.PasswordHash = &hash
	}
	return req, upd, nil
}

// userPatch is the body of PATCH /users/{id}; absent fields stay.
type userPatch struct {
	Role     *string `json:"role"`
	Plan     *string `json:"plan"`
	Password *string `json:"password"`
}

func (a *API) setDisabled(disabled bool) httpx.HandlerFunc {
	action := tollgate.AuditUserEnable
	if disabled {
		action = tollgate.AuditUserDisable
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		id := r.PathValue("id")
		var u *tollgate.User
		err := a.change(r, &tollgate.AuditEvent{Action: action, Target: id}, func(tx tollgate.AuditTx) (commitFunc, error) {
			commit, err := a.opts.Auth.SetDisabledIn(r.Context(), tx, id, disabled)
			if err != nil {
				return nil, err
			}
			u, err = tx.Users().User(r.Context(), id)
			return commit, err
		})
		if err != nil {
			return err
		}
		httpx.WriteJSON(w, http.StatusOK, a.view(u))
		return nil
	}
}

// revokeUser invalidates every token and refresh token of a user.
func (a *API) revokeUser(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	err := a.change(r, &tollgate.AuditEvent{Action: tollgate.AuditUserRevoke, Target: id}, func(tx tollgate.AuditTx) (commitFunc, error) {
		return a.opts.Auth.RevokeUserIn(r.Context(), tx, id)
	})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"revoked_user": id})
	return nil
}

type keyView struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	Revoked    bool       `json:"revoked"`
	Key        string     `json:"key,omitempty"` // only in the answer that creates it
}

func viewKey(k *tollgate.APIKey) keyView {
	v := keyView{ID: k.ID, UserID: k.UserID, Name: k.Name, CreatedAt: k.CreatedAt, Revoked: k.Revoked}
	if !k.LastUsedAt.IsZero() {
		t := k.LastUsedAt
		v.LastUsedAt = &t
	}
	return v
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) error {
	u, err := a.userOr404(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	keys, err := a.opts.Store.APIKeys().APIKeys(r.Context(), u.ID)
	if err != nil {
		return err
	}
	out := make([]keyView, 0, len(keys))
	for _, k := range keys {
		out = append(out, viewKey(k))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"keys": out})
	return nil
}

// createKey creates an API key: {"name"}; the secret is in this answer
// only.
func (a *API) createKey(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name string `json:"name"`
	}
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			return err
		}
	}
	raw, key := token.NewAPIKey(r.PathValue("id"), req.Name, a.opts.Now())
	ev := &tollgate.AuditEvent{Action: tollgate.AuditKeyCreate, Target: key.ID, Detail: "user " + key.UserID + " name " + key.Name}
	err := a.change(r, ev, func(tx tollgate.AuditTx) (commitFunc, error) {
		if _, err := tx.Users().User(r.Context(), key.UserID); err != nil {
			return nil, err
		}
		return nil, tx.APIKeys().CreateAPIKey(r.Context(), key)
	})
	if err != nil {
		return err
	}
	v := viewKey(key)
	v.Key = raw
	httpx.WriteJSON(w, http.StatusCreated, v)
	return nil
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) error {
	ev := &tollgate.AuditEvent{Action: tollgate.AuditKeyRevoke, Target: r.PathValue("id")}
	err := a.change(r, ev, func(tx tollgate.AuditTx) (commitFunc, error) {
		return nil, tx.APIKeys().RevokeAPIKey(r.Context(), r.PathValue("id"))
	})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"revoked": r.PathValue("id")})
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

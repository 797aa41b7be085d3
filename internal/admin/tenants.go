package admin

import (
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// tenantView is a tenant as the admin API shows it.
type tenantView struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Disabled  bool       `json:"disabled"`
	Users     int        `json:"users"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

func viewTenant(t *tollgate.Tenant, users int) tenantView {
	v := tenantView{ID: t.ID, Name: t.Name, Disabled: t.Disabled, Users: users, CreatedAt: t.CreatedAt}
	if !t.UpdatedAt.IsZero() {
		u := t.UpdatedAt
		v.UpdatedAt = &u
	}
	return v
}

// tenantOr404 loads a tenant by id or name.
func (a *API) tenantOr404(r *http.Request) (*tollgate.Tenant, error) {
	return a.opts.Store.Tenants().Tenant(r.Context(), r.PathValue("id"))
}

// listTenants serves GET /tenants: {"tenants":[{id, name, disabled,
// users, created_at, updated_at}]}, users being how many users each has.
func (a *API) listTenants(w http.ResponseWriter, r *http.Request) error {
	ts, err := a.opts.Store.Tenants().Tenants(r.Context())
	if err != nil {
		return err
	}
	users, err := a.opts.Store.Users().Users(r.Context(), "")
	if err != nil {
		return err
	}
	count := map[string]int{}
	for _, u := range users {
		count[u.TenantID]++
	}
	out := make([]tenantView, 0, len(ts))
	for _, t := range ts {
		out = append(out, viewTenant(t, count[t.ID]))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"tenants": out})
	return nil
}

// getTenant serves GET /tenants/{id} (an id or a name).
func (a *API) getTenant(w http.ResponseWriter, r *http.Request) error {
	t, err := a.tenantOr404(r)
	if err != nil {
		return err
	}
	return a.writeTenant(w, r, t)
}

// createTenant serves POST /tenants: {"id","name"}; the name defaults to
// the id, the id to a generated one.
func (a *API) createTenant(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	req.ID, req.Name = strings.TrimSpace(req.ID), strings.TrimSpace(req.Name)
	if req.Name == "" {
		req.Name = req.ID
	}
	t := &tollgate.Tenant{ID: req.ID, Name: req.Name}
	ev := &tollgate.AuditEvent{Action: tollgate.AuditTenantCreate, Target: req.ID, Detail: "name " + req.Name}
	err := a.change(r, ev, func(tx tollgate.AuditTx) (commitFunc, error) {
		err := tx.Tenants().CreateTenant(r.Context(), t)
		ev.Target = t.ID
		return nil, err
	})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, viewTenant(t, 0))
	return nil
}

// updateTenant serves PATCH /tenants/{id}: {"name"} renames the tenant
// (its id, which users and usage records name, stays).
func (a *API) updateTenant(w http.ResponseWriter, r *http.Request) error {
	ev := &tollgate.AuditEvent{Action: tollgate.AuditTenantUpdate, Target: r.PathValue("id")}
	var req struct {
		Name *string `json:"name"`
	}
	if err := decode(r, &req); err != nil {
		a.refused(r, ev, err)
		return err
	}
	if req.Name == nil || strings.TrimSpace(*req.Name) == "" {
		err := tollgate.Errorf(tollgate.EInvalid, "name is required")
		a.refused(r, ev, err)
		return err
	}
	name := strings.TrimSpace(*req.Name)
	ev.Detail = "name " + name
	var t *tollgate.Tenant
	err := a.change(r, ev, func(tx tollgate.AuditTx) (commitFunc, error) {
		old, err := pathTenant(r, tx, ev)
		if err != nil {
			return nil, err
		}
		t, err = tx.Tenants().UpdateTenant(r.Context(), old.ID, tollgate.TenantUpdate{Name: &name})
		return nil, err
	})
	if err != nil {
		return err
	}
	return a.writeTenant(w, r, t)
}

// setTenantDisabled serves POST /tenants/{id}/disable and /enable.
// Disabling ends every session, token and API key use of the tenant's
// users on every replica within a second; an admin cannot disable their
// own tenant (it would lock them out).
func (a *API) setTenantDisabled(disabled bool) httpx.HandlerFunc {
	action := tollgate.AuditTenantEnable
	if disabled {
		action = tollgate.AuditTenantDisable
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		ev := &tollgate.AuditEvent{Action: action, Target: r.PathValue("id")}
		var t *tollgate.Tenant
		err := a.change(r, ev, func(tx tollgate.AuditTx) (commitFunc, error) {
			old, err := pathTenant(r, tx, ev)
			if err != nil {
				return nil, err
			}
			if p := auth.PrincipalFrom(r.Context()); disabled && p != nil && p.TenantID == old.ID {
				return nil, tollgate.Errorf(tollgate.EConflict, "you cannot disable your own tenant")
			}
			var commit auth.Commit
			t, commit, err = a.opts.Auth.SetTenantDisabledIn(r.Context(), tx, old.ID, disabled)
			return commit, err
		})
		if err != nil {
			return err
		}
		return a.writeTenant(w, r, t)
	}
}

// pathTenant loads the tenant r's path names (an id or a name) in tx and
// makes its id the target of ev.
func pathTenant(r *http.Request, tx tollgate.AuditTx, ev *tollgate.AuditEvent) (*tollgate.Tenant, error) {
	t, err := tx.Tenants().Tenant(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	ev.Target = t.ID
	return t, nil
}

// writeTenant answers with t and how many users it has.
func (a *API) writeTenant(w http.ResponseWriter, r *http.Request, t *tollgate.Tenant) error {
	users, err := a.opts.Store.Users().Users(r.Context(), t.ID)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, viewTenant(t, len(users)))
	return nil
}

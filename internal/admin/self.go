package admin

import (
	"net/http"
	"slices"
	"time"

	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// RegisterSelf mounts what every user may do to their own account,
// audited like the admin's changes: GET/POST /v1/me/keys and DELETE
// /v1/me/keys/{id} (their API keys only; another user's key is 404), and
// GET /v1/me/sessions and DELETE /v1/me/sessions/{id} (their own live
// sessions: browser sessions and logins; another user's is 404), and
// POST /v1/me/revoke, which ends every session and token of the caller.
// Users of a trusted issuer have no account here and get 403.
func (a *API) RegisterSelf(mux httpx.Mux) {
	h := func(f httpx.HandlerFunc) http.Handler { return a.opts.Auth.Require(httpx.Handle(a.opts.Logger, f)) }
	mux.Handle("GET /v1/me/keys", h(a.listOwnKeys))
	mux.Handle("POST /v1/me/keys", h(a.createOwnKey))
	mux.Handle("DELETE /v1/me/keys/{id}", h(a.revokeOwnKey))
	mux.Handle("GET /v1/me/sessions", h(a.listOwnSessions))
	mux.Handle("DELETE /v1/me/sessions/{id}", h(a.endOwnSession))
	mux.Handle("POST /v1/me/revoke", h(a.revokeSelf))
}

// sessionView is a session as its user sees it; current marks the one
// the request came with.
type sessionView struct {
	ID        string     `json:"id"`
	CreatedAt time.Time  `json:"created_at"`
	LastUsed  time.Time  `json:"last_used_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Current   bool       `json:"current"`
}

// listOwnSessions serves GET /v1/me/sessions: {"sessions":[{id,
// created_at, last_used_at, expires_at, current}]}, newest first.
func (a *API) listOwnSessions(w http.ResponseWriter, r *http.Request) error {
	uid, err := self(r)
	if err != nil {
		return err
	}
	list, err := a.opts.Store.RefreshTokens().Sessions(r.Context(), uid, a.opts.Now())
	if err != nil {
		return err
	}
	current := auth.PrincipalFrom(r.Context()).SessionID
	out := make([]sessionView, 0, len(list))
	for _, ss := range list {
		v := sessionView{ID: ss.FamilyID, CreatedAt: ss.CreatedAt, LastUsed: ss.LastUsed, Current: ss.FamilyID == current}
		if !ss.ExpiresAt.IsZero() {
			e := ss.ExpiresAt
			v.ExpiresAt = &e
		}
		out = append(out, v)
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"sessions": out})
	return nil
}

// endOwnSession serves DELETE /v1/me/sessions/{id}: the session ends on
// every replica within a second. Another user's session, or one that
// already ended, is 404.
func (a *API) endOwnSession(w http.ResponseWriter, r *http.Request) error {
	uid, err := self(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	ev := &tollgate.AuditEvent{Action: tollgate.AuditRevoke, Target: "family " + id, Detail: "by the user"}
	err = a.change(r, ev, func(tx tollgate.AuditTx) (commitFunc, error) {
		live, err := tx.RefreshTokens().Sessions(r.Context(), uid, a.opts.Now())
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(live, func(ss *tollgate.Session) bool { return ss.FamilyID == id }) {
			return nil, tollgate.Errorf(tollgate.ENotFound, "no such session of yours")
		}
		return a.opts.Auth.RevokeSessionIn(r.Context(), tx, id)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// self returns the caller's user id, refusing callers without an account.
func self(r *http.Request) (string, error) {
	p := auth.PrincipalFrom(r.Context())
	if p == nil {
		return "", tollgate.Errorf(tollgate.EUnauthorized, "authentication required")
	}
	if p.External {
		return "", tollgate.Errorf(tollgate.EForbidden, "users of a trusted issuer have no API keys here")
	}
	return p.UserID, nil
}

func (a *API) listOwnKeys(w http.ResponseWriter, r *http.Request) error {
	uid, err := self(r)
	if err != nil {
		return err
	}
	keys, err := a.opts.Store.APIKeys().APIKeys(r.Context(), uid)
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

// createOwnKey creates an API key of the caller: {"name"}; the secret is
// in this answer only.
func (a *API) createOwnKey(w http.ResponseWriter, r *http.Request) error {
	uid, err := self(r)
	if err != nil {
		return err
	}
	var req struct {
		Name string `json:"name"`
	}
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			return err
		}
	}
	if len(req.Name) > 100 {
		return tollgate.Errorf(tollgate.EInvalid, "name is longer than 100 bytes")
	}
	raw, key := token.NewAPIKey(uid, req.Name, a.opts.Now())
	ev := &tollgate.AuditEvent{Action: tollgate.AuditKeyCreate, Target: key.ID, Detail: "user " + key.UserID + " name " + key.Name}
	if err := a.change(r, ev, func(tx tollgate.AuditTx) (commitFunc, error) {
		return nil, tx.APIKeys().CreateAPIKey(r.Context(), key)
	}); err != nil {
		return err
	}
	v := viewKey(key)
	v.Key = raw
	httpx.WriteJSON(w, http.StatusCreated, v)
	return nil
}

func (a *API) revokeOwnKey(w http.ResponseWriter, r *http.Request) error {
	uid, err := self(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	ev := &tollgate.AuditEvent{Action: tollgate.AuditKeyRevoke, Target: id}
	if err := a.change(r, ev, func(tx tollgate.AuditTx) (commitFunc, error) {
		k, err := tx.APIKeys().APIKey(r.Context(), id)
		if err != nil {
			return nil, err
		}
		if k.UserID != uid {
			return nil, tollgate.Errorf(tollgate.ENotFound, "API key not found")
		}
		return nil, tx.APIKeys().RevokeAPIKey(r.Context(), id)
	}); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"revoked": id})
	return nil
}

// revokeSelf ends every session and token of the caller, this one too.
func (a *API) revokeSelf(w http.ResponseWriter, r *http.Request) error {
	uid, err := a.RevokeSelf(r)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"revoked_user": uid})
	return nil
}

// RevokeSelf ends every session and token of r's caller, audited, and
// returns the caller's user id.
func (a *API) RevokeSelf(r *http.Request) (string, error) {
	uid, err := self(r)
	if err != nil {
		return "", err
	}
	err = a.change(r, &tollgate.AuditEvent{Action: tollgate.AuditUserRevoke, Target: uid, Detail: "by the user"}, func(tx tollgate.AuditTx) (commitFunc, error) {
		return a.opts.Auth.RevokeUserIn(r.Context(), tx, uid)
	})
	return uid, err
}

package webhook

import (
	"net/http"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// SecretHandler answers GET /v1/webhooks/default/secret with the caller's
// own signing secret, {"key": "whsec_…"}, creating it on first use.
// principal returns the authenticated caller (nil when there is none).
func SecretHandler(secrets *Secrets, principal func(*http.Request) *tollgate.Principal) httpx.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p := principal(r)
		if p == nil {
			return tollgate.Errorf(tollgate.EUnauthorized, "missing bearer token")
		}
		if p.TenantID == "" || p.UserID == "" {
			return tollgate.Errorf(tollgate.EForbidden, "the token names no tenant and user to hold a webhook secret")
		}
		key, err := secrets.Key(r.Context(), p.TenantID, p.UserID)
		if err != nil {
			return err
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"key": FormatSecret(key)})
		return nil
	}
}

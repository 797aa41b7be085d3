package tollgate

import (
	"slices"
	"strings"
	"time"
)

// Principal is a verified caller: what a token or API key says about who is
// calling. It is handed from the verifier to every feature.
type Principal struct {
	Issuer   string   // iss
	UserID   string   // sub
	TenantID string   // tenant_id
	Role     string   // role
	Scopes   []string // scope, split on spaces
	Plan     string   // plan
	JTI      string   // jti; empty for API keys used directly
	// SessionID is the sid claim of tollgate's own tokens: the refresh-token
	// family the token was issued with, so revoking the family revokes it.
	// Empty for tokens issued without one (client credentials, minted).
	SessionID string
	IssuedAt  time.Time // iat
	Expires   time.Time // exp
	// External is true for tokens of a trusted external issuer; such users
	// may have no row in the store.
	External bool
	// ViaSession is true when the browser's session cookie authenticated
	// the request, not a bearer credential: its state-changing requests
	// were CSRF-checked, and the HTML pages it loads through a route get
	// the session's CSRF token.
	ViaSession bool
}

// HasScope reports whether p holds scope s, directly or through "*".
func (p *Principal) HasScope(s string) bool {
	return slices.Contains(p.Scopes, s) || slices.Contains(p.Scopes, "*")
}

// HasScopes reports whether p holds every one of scopes.
func (p *Principal) HasScopes(scopes []string) bool {
	for _, s := range scopes {
		if !p.HasScope(s) {
			return false
		}
	}
	return true
}

// ScopeString returns the scopes joined by spaces, as in the scope claim.
func (p *Principal) ScopeString() string { return strings.Join(p.Scopes, " ") }

package tollgate

import "context"

// Store is one engine's set of stores (SQLite on one node, PostgreSQL in
// cluster mode). Every implementation passes internal/storetest. Its
// stores return EUnavailable (with a Retry-After) when the database cannot
// be reached, or cannot write because its disk is full or failing.
type Store interface {
	Tenants() TenantStore
	Users() UserStore
	APIKeys() APIKeyStore
	SigningKeys() SigningKeyStore
	RefreshTokens() RefreshTokenStore
	Revocations() RevocationStore
	// Ping reports whether the store answers (for /readyz).
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

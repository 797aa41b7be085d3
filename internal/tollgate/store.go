package tollgate

import "context"

// Store is one engine's set of stores (SQLite on one node, PostgreSQL in
// cluster mode). Every implementation passes internal/storetest. Any
// method of any of its stores returns EUnavailable (with a Retry-After)
// when the database cannot be reached or its disk cannot be written.
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

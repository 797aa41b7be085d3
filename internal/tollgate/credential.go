package tollgate

import (
	"context"
	"time"
)

// APIKey is a long-lived credential of a user. The secret is shown once on
// creation; only its hash is stored.
type APIKey struct {
	ID         string // public identifier, also the prefix of the secret
	UserID     string
	Name       string
	Hash       []byte // SHA-256 of the whole secret
	CreatedAt  time.Time
	LastUsedAt time.Time // zero if never used
	Revoked    bool
}

// APIKeyStore keeps API keys.
type APIKeyStore interface {
	// CreateAPIKey stores k. EConflict if the ID exists, ENotFound if the
	// user does not.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// APIKey returns a key by ID, revoked ones included. ENotFound if absent.
	APIKey(ctx context.Context, id string) (*APIKey, error)
	// APIKeys lists a user's keys, newest first.
	APIKeys(ctx context.Context, userID string) ([]*APIKey, error)
	// RevokeAPIKey marks a key revoked. ENotFound if absent.
	RevokeAPIKey(ctx context.Context, id string) error
	// TouchAPIKey records a use of the key at t.
	TouchAPIKey(ctx context.Context, id string, t time.Time) error
}

// RefreshToken is one opaque refresh token of a rotation family. Only the
// SHA-256 of the secret is stored.
type RefreshToken struct {
	Hash      []byte
	FamilyID  string
	UserID    string
	Scopes    []string
	IssuedAt  time.Time
	ExpiresAt time.Time // idle expiry of this token
	// FamilyExpiresAt is the absolute expiry of the family; rotation never
	// extends it.
	FamilyExpiresAt time.Time
	UsedAt          time.Time // zero until rotated
	Revoked         bool      // the family is revoked
}

// Session is a live refresh-token family of a user: a browser's session
// or a client's login.
type Session struct {
	FamilyID  string
	UserID    string
	CreatedAt time.Time // the login
	LastUsed  time.Time // when its newest token was issued: the login or its latest renewal
	ExpiresAt time.Time // the family's absolute expiry; zero when it has none
}

// RefreshTokenStore keeps refresh-token families.
type RefreshTokenStore interface {
	// CreateRefreshToken stores t. EConflict if the hash exists.
	CreateRefreshToken(ctx context.Context, t *RefreshToken) error
	// ConsumeRefreshToken atomically marks the token with this hash used at
	// now and returns it. It returns EUnauthorized when the token is unknown,
	// expired (idle or absolute) or its family revoked, and
	// ErrRefreshReused when it was already used — in which case the whole
	// family is revoked before returning.
	ConsumeRefreshToken(ctx context.Context, hash []byte, now time.Time) (*RefreshToken, error)
	// RefreshToken returns a token by hash without consuming it. ENotFound.
	RefreshToken(ctx context.Context, hash []byte) (*RefreshToken, error)
	// RevokeRefreshFamily revokes every token of a family. ENotFound if no
	// token of it exists.
	RevokeRefreshFamily(ctx context.Context, familyID string) error
	// RevokeUserRefreshTokens revokes every family of a user.
	RevokeUserRefreshTokens(ctx context.Context, userID string) error
	// Sessions lists the user's live families at now: not revoked, not
	// past their absolute expiry, holding a token neither used nor past its
	// idle expiry. Newest login first.
	Sessions(ctx context.Context, userID string, now time.Time) ([]*Session, error)
	// DeleteExpiredRefreshTokens removes tokens whose family expired before
	// t and returns how many it removed.
	DeleteExpiredRefreshTokens(ctx context.Context, t time.Time) (int, error)
}

// Revocation denies one access token, keyed on (issuer, jti) until the
// token's own expiry.
type Revocation struct {
	Issuer    string
	JTI       string
	ExpiresAt time.Time
	CreatedAt time.Time
}

// RevocationStore keeps the access-token denylist.
type RevocationStore interface {
	// Revoke stores r; revoking twice is not an error.
	Revoke(ctx context.Context, r *Revocation) error
	// Revoked reports whether (issuer, jti) is revoked.
	Revoked(ctx context.Context, issuer, jti string) (bool, error)
	// Revocations lists the entries that expire after t, to load the
	// in-memory denylist at start.
	Revocations(ctx context.Context, after time.Time) ([]*Revocation, error)
	// DeleteExpiredRevocations removes entries that expired before t.
	DeleteExpiredRevocations(ctx context.Context, t time.Time) (int, error)
}

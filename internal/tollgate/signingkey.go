package tollgate

import (
	"context"
	"time"
)

// Signing-key states. A key is published in the JWKS from the moment it is
// created ("next"), signs while "active", and stays published while
// "retired" until every token it signed has expired.
const (
	KeyNext    = "next"
	KeyActive  = "active"
	KeyRetired = "retired"
)

// SigningKey is a key the gateway signs its own tokens with.
type SigningKey struct {
	ID        string // kid
	Algorithm string // ES256, EdDSA or RS256
	Purpose   string // "access" or "internal" (upstream tokens); one key per purpose
	// PrivateKey is PKCS#8 DER, encrypted when a passphrase is configured
	// (Encrypted is then true).
	PrivateKey []byte
	Encrypted  bool
	PublicKey  []byte // PKIX DER
	State      string
	CreatedAt  time.Time
	ActivateAt time.Time // when "next" becomes signable
	RetiredAt  time.Time // zero unless retired
	// RemoveAfter: a retired key is dropped from the JWKS after this.
	RemoveAfter time.Time
}

// SigningKeyStore keeps signing keys.
type SigningKeyStore interface {
	// CreateSigningKey stores k. EConflict if the ID exists.
	CreateSigningKey(ctx context.Context, k *SigningKey) error
	// SigningKeys lists the keys of a purpose that are not removed, oldest
	// first.
	SigningKeys(ctx context.Context, purpose string) ([]*SigningKey, error)
	// UpdateSigningKey stores new State, ActivateAt, RetiredAt and
	// RemoveAfter of k. ENotFound if absent.
	UpdateSigningKey(ctx context.Context, k *SigningKey) error
	// DeleteSigningKey removes a key. ENotFound if absent.
	DeleteSigningKey(ctx context.Context, id string) error
}

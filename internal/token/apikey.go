package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// API keys look like "tg_<id>_<secret>": id is 16 lowercase hex digits
// (the public identifier, stored in clear), secret 32 random bytes
// base64url. Only the SHA-256 of the whole string is stored.
const (
	APIKeyPrefix    = "tg_"
	apiKeyIDLen     = 8 // bytes, hex-encoded
	apiKeySecretLen = 32
)

var errAPIKeyInvalid = unauthorized("api key invalid")

// NewAPIKey returns a fresh key for user: the raw string, to show once,
// and the record to store.
func NewAPIKey(userID, name string, now time.Time) (string, *tollgate.APIKey) {
	id := make([]byte, apiKeyIDLen)
	secret := make([]byte, apiKeySecretLen)
	_, _ = rand.Read(id) // never fails (crypto/rand)
	_, _ = rand.Read(secret)
	k := &tollgate.APIKey{ID: hex.EncodeToString(id), UserID: userID, Name: name, CreatedAt: now}
	raw := APIKeyPrefix + k.ID + "_" + b64(secret)
	h := sha256.Sum256([]byte(raw))
	k.Hash = h[:]
	return raw, k
}

// ParseAPIKey splits raw into the key's ID, to look it up, and the hash to
// compare with APIKeyMatches. EUnauthorized when raw is not shaped like an
// API key.
func ParseAPIKey(raw string) (id string, hash []byte, err error) {
	rest, ok := strings.CutPrefix(raw, APIKeyPrefix)
	if !ok {
		return "", nil, errAPIKeyInvalid
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 2*apiKeyIDLen || strings.ToLower(id) != id {
		return "", nil, errAPIKeyInvalid
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", nil, errAPIKeyInvalid
	}
	if !isB64URLString(secret) {
		return "", nil, errAPIKeyInvalid
	}
	if b, err := strictB64.DecodeString(secret); err != nil || len(b) != apiKeySecretLen {
		return "", nil, errAPIKeyInvalid
	}
	h := sha256.Sum256([]byte(raw))
	return id, h[:], nil
}

// IsAPIKey reports whether raw has the shape of an API key.
func IsAPIKey(raw string) bool {
	_, _, err := ParseAPIKey(raw)
	return err == nil
}

// APIKeyMatches compares a presented key's hash with the stored key in
// constant time; a revoked key never matches.
func APIKeyMatches(stored *tollgate.APIKey, hash []byte) bool {
	return stored != nil && !stored.Revoked && subtle.ConstantTimeCompare(stored.Hash, hash) == 1
}

package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// argon2id parameters (OWASP): m=19 MiB, t=2, p=1.
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// Hasher hashes and checks passwords with argon2id. A semaphore bounds the
// hashes running at once, so a login flood costs at most
// limit × 19 MiB of memory; callers wait (or give up with their context).
type Hasher struct {
	sem   chan struct{}
	dummy string // hash checked for unknown users, so they take as long
}

// NewHasher returns a Hasher running at most limit hashes at once
// (limit <= 0 means 2).
func NewHasher(limit int) *Hasher {
	if limit <= 0 {
		limit = 2
	}
	h := &Hasher{sem: make(chan struct{}, limit)}
	h.dummy = encodeHash(make([]byte, argonSaltLen), argon2.IDKey([]byte("dummy"), make([]byte, argonSaltLen), argonTime, argonMemory, argonThreads, argonKeyLen))
	return h
}

// Hash returns the PHC string of password.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return encodeHash(salt, argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)), nil
}

// Verify reports whether password matches the PHC string hash. An empty
// hash (unknown user, or no password set) is checked against a dummy hash
// so the answer takes the same time, and is always false.
func (h *Hasher) Verify(ctx context.Context, hash, password string) (bool, error) {
	known := hash != ""
	if !known {
		hash = h.dummy
	}
	salt, want, m, t, p, err := decodeHash(hash)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return known && subtle.ConstantTimeCompare(got, want) == 1, nil
}

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return tollgate.Errorf(tollgate.EUnavailable, "too many logins at once; try again")
	}
}

func (h *Hasher) release() { <-h.sem }

func encodeHash(salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

func decodeHash(s string) (salt, key []byte, m, t uint32, p uint8, err error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return nil, nil, 0, 0, 0, fmt.Errorf("password hash: not an argon2id PHC string")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return nil, nil, 0, 0, 0, fmt.Errorf("password hash parameters: %w", err)
	}
	if m == 0 || m > 1<<20 || t == 0 || t > 16 || p == 0 {
		return nil, nil, 0, 0, 0, fmt.Errorf("password hash parameters out of range")
	}
	b64 := base64.RawStdEncoding
	if salt, err = b64.DecodeString(parts[4]); err != nil {
		return nil, nil, 0, 0, 0, fmt.Errorf("password hash salt: %w", err)
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < 16 {
		return nil, nil, 0, 0, 0, fmt.Errorf("password hash key: invalid")
	}
	return salt, key, m, t, p, nil
}

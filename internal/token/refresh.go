package token

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// RefreshPrefix starts every refresh token, so leaked ones are recognisable
// (secret scanners) and never mistaken for an access token or API key.
const RefreshPrefix = "tgr_"

const refreshSecretLen = 32

var errRefreshInvalid = unauthorized("refresh token invalid or expired")

// RefreshOptions configure a Refresher.
type RefreshOptions struct {
	// IdleTTL: a refresh token not used within it expires. Defaults to 24 h.
	IdleTTL time.Duration
	// AbsoluteTTL: a family expires this long after its first token,
	// whatever its use. Defaults to 30 days.
	AbsoluteTTL time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// Refresher issues and rotates opaque refresh tokens. Only their SHA-256
// is stored.
type Refresher struct {
	store tollgate.RefreshTokenStore
	opts  RefreshOptions
}

// NewRefresher returns a Refresher over store.
func NewRefresher(store tollgate.RefreshTokenStore, opts RefreshOptions) *Refresher {
	opts.IdleTTL = cmp.Or(opts.IdleTTL, 24*time.Hour)
	opts.AbsoluteTTL = cmp.Or(opts.AbsoluteTTL, 30*24*time.Hour)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Refresher{store: store, opts: opts}
}

// Start begins a new family for a login and returns its first token.
func (r *Refresher) Start(ctx context.Context, userID string, scopes []string) (string, *tollgate.RefreshToken, error) {
	if userID == "" {
		return "", nil, fmt.Errorf("start refresh family: user required")
	}
	now := r.opts.Now()
	t := &tollgate.RefreshToken{
		FamilyID:        randomID(16),
		UserID:          userID,
		Scopes:          slices.Clone(scopes),
		IssuedAt:        now,
		FamilyExpiresAt: now.Add(r.opts.AbsoluteTTL),
	}
	return r.create(ctx, t)
}

// Rotate consumes raw and returns the next token of its family, with the
// user and scopes to issue the access token for. A token presented a
// second time returns tollgate.ErrRefreshReused and its whole family is
// revoked; the returned token is then the replayed one, so the caller can
// revoke the access tokens of its family (FamilyID). Any other refusal is
// an EUnauthorized error.
func (r *Refresher) Rotate(ctx context.Context, raw string) (string, *tollgate.RefreshToken, error) {
	hash, ok := HashRefreshToken(raw)
	if !ok {
		return "", nil, errRefreshInvalid
	}
	old, err := r.store.ConsumeRefreshToken(ctx, hash, r.opts.Now())
	if err != nil {
		if errors.Is(err, tollgate.ErrRefreshReused) {
			replayed, lerr := r.store.RefreshToken(ctx, hash)
			if lerr != nil {
				return "", nil, errors.Join(err, fmt.Errorf("find replayed refresh token: %w", lerr))
			}
			return "", replayed, err
		}
		if tollgate.ErrorCode(err) == tollgate.EUnauthorized {
			return "", nil, err
		}
		return "", nil, fmt.Errorf("consume refresh token: %w", err)
	}
	next := &tollgate.RefreshToken{
		FamilyID:        old.FamilyID,
		UserID:          old.UserID,
		Scopes:          old.Scopes,
		IssuedAt:        r.opts.Now(),
		FamilyExpiresAt: old.FamilyExpiresAt,
	}
	return r.create(ctx, next)
}

// Revoke revokes the family of raw and returns its id (RFC 7009: unknown
// tokens are not an error, and return "").
func (r *Refresher) Revoke(ctx context.Context, raw string) (familyID string, err error) {
	hash, ok := HashRefreshToken(raw)
	if !ok {
		return "", nil
	}
	t, err := r.store.RefreshToken(ctx, hash)
	if tollgate.ErrorCode(err) == tollgate.ENotFound {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find refresh token: %w", err)
	}
	if err := r.store.RevokeRefreshFamily(ctx, t.FamilyID); err != nil && tollgate.ErrorCode(err) != tollgate.ENotFound {
		return "", fmt.Errorf("revoke refresh family: %w", err)
	}
	return t.FamilyID, nil
}

func (r *Refresher) create(ctx context.Context, t *tollgate.RefreshToken) (string, *tollgate.RefreshToken, error) {
	secret := make([]byte, refreshSecretLen)
	_, _ = rand.Read(secret) // never fails (crypto/rand)
	raw := RefreshPrefix + b64(secret)
	t.Hash, _ = HashRefreshToken(raw)
	t.ExpiresAt = t.IssuedAt.Add(r.opts.IdleTTL)
	if t.ExpiresAt.After(t.FamilyExpiresAt) {
		t.ExpiresAt = t.FamilyExpiresAt
	}
	if !t.IssuedAt.Before(t.ExpiresAt) {
		return "", nil, errRefreshInvalid
	}
	if err := r.store.CreateRefreshToken(ctx, t); err != nil {
		return "", nil, fmt.Errorf("store refresh token: %w", err)
	}
	return raw, t, nil
}

// IsRefreshToken reports whether raw has the shape of a refresh token.
func IsRefreshToken(raw string) bool {
	_, ok := HashRefreshToken(raw)
	return ok
}

// HashRefreshToken returns the stored hash of raw, and false when raw is
// not shaped like a refresh token (prefix + 32 bytes base64url).
func HashRefreshToken(raw string) ([]byte, bool) {
	s, ok := strings.CutPrefix(raw, RefreshPrefix)
	if !ok || !isB64URLString(s) {
		return nil, false
	}
	if b, err := strictB64.DecodeString(s); err != nil || len(b) != refreshSecretLen {
		return nil, false
	}
	h := sha256.Sum256([]byte(raw))
	return h[:], true
}

package token

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Limits of the verifier.
const (
	// DefaultMaxTokenSize caps a token's length before any parsing.
	DefaultMaxTokenSize = 8 << 10
	// MaxLeeway is the largest clock-skew allowance accepted.
	MaxLeeway = 60 * time.Second
)

// VerifierOptions configure a Verifier.
type VerifierOptions struct {
	// Issuer is tollgate's own iss (its public URL). Required with Keys.
	Issuer string
	// Audience tollgate's own tokens must hold. Defaults to
	// DefaultAudience.
	Audience string
	// Keys verifies tollgate's own tokens. nil: external issuers only.
	Keys *KeyManager
	// Trusted external issuers.
	Trusted []TrustedIssuer
	// JWKS tunes fetching external issuers' key sets.
	JWKS JWKSOptions
	// Denylist consulted on every Verify. Defaults to an empty one.
	Denylist *Denylist
	// Leeway for exp, nbf and iat; at most MaxLeeway. Defaults to 30 s.
	Leeway time.Duration
	// MaxTokenSize in bytes. Defaults to DefaultMaxTokenSize.
	MaxTokenSize int
	// CacheSize is the number of verified tokens remembered; negative
	// disables the cache. Defaults to 100 000.
	CacheSize int
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger for background failures. Defaults to slog.Default().
	Logger *slog.Logger
}

// Verifier checks access tokens of tollgate and of trusted external
// issuers. It is safe for concurrent use.
type Verifier struct {
	opts    VerifierOptions
	own     *profile
	trusted map[string]*trusted
	cache   *tokenCache

	mu   sync.Mutex
	stop context.CancelFunc
	done chan struct{}
}

// NewVerifier returns a Verifier. It makes no network request: external key
// sets are fetched by Start or on first use.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	opts.Audience = cmp.Or(opts.Audience, DefaultAudience)
	opts.Leeway = cmp.Or(opts.Leeway, 30*time.Second)
	opts.MaxTokenSize = cmp.Or(opts.MaxTokenSize, DefaultMaxTokenSize)
	opts.CacheSize = cmp.Or(opts.CacheSize, 100_000)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Denylist == nil {
		opts.Denylist = NewDenylist(opts.Now)
	}
	if opts.Leeway < 0 || opts.Leeway > MaxLeeway {
		return nil, fmt.Errorf("token verifier: leeway must be between 0 and %s", MaxLeeway)
	}
	if err := opts.JWKS.fill(); err != nil {
		return nil, err
	}
	v := &Verifier{opts: opts, trusted: map[string]*trusted{}}
	if opts.Keys != nil {
		if opts.Issuer == "" {
			return nil, fmt.Errorf("token verifier: issuer URL required")
		}
		v.own = newProfile(opts.Issuer, opts.Audience, TypeAccessToken, []string{ES256, EdDSA, RS256}, opts.Leeway, opts.Now)
	}
	for _, t := range opts.Trusted {
		if _, dup := v.trusted[t.Issuer]; dup || (v.own != nil && t.Issuer == opts.Issuer) {
			return nil, fmt.Errorf("token verifier: issuer %s configured twice", t.Issuer)
		}
		tr, err := newTrusted(t, opts.Leeway, opts.JWKS, opts.Now)
		if err != nil {
			return nil, err
		}
		v.trusted[t.Issuer] = tr
	}
	if opts.CacheSize > 0 {
		v.cache = newTokenCache(opts.CacheSize)
	}
	return v, nil
}

// Denylist returns the revocation state the verifier consults.
func (v *Verifier) Denylist() *Denylist { return v.opts.Denylist }

// Verify checks raw and returns the identity it carries. Every failure is
// an EUnauthorized *tollgate.Error whose message is safe to show. The
// returned Principal may be shared with other callers: never modify it.
func (v *Verifier) Verify(ctx context.Context, raw string) (*tollgate.Principal, error) {
	now := v.opts.Now()
	if v.cache != nil {
		if e, ok := v.cache.get(raw, now); ok && v.published(e) {
			if err := v.opts.Denylist.Check(e.p); err != nil {
				return nil, err
			}
			return e.p, nil
		}
	}
	e, err := v.verify(ctx, raw, now)
	if err != nil {
		return nil, err
	}
	if err := v.opts.Denylist.Check(e.p); err != nil {
		return nil, err
	}
	if v.cache != nil {
		e.deadline = e.p.Expires.Add(v.opts.Leeway).UnixNano()
		v.cache.put(raw, e, now)
	}
	return e.p, nil
}

// published reports whether the key that signed a cached token is still
// published: removing a key refuses its tokens at once, cached or not.
func (v *Verifier) published(e cacheEntry) bool {
	if e.tr != nil {
		return e.tr.keys.cached(e.kid) != nil
	}
	return v.opts.Keys != nil && v.opts.Keys.lookup(e.kid) != nil
}

// verify checks raw fully and returns the cache entry for it (without
// deadline).
func (v *Verifier) verify(ctx context.Context, raw string, now time.Time) (cacheEntry, error) {
	t, err := parseCompact(raw, v.opts.MaxTokenSize)
	if err != nil {
		return cacheEntry{}, err
	}
	iss, _ := t.claims["iss"].(string)
	var tr *trusted
	pr := v.own
	if pr == nil || iss != pr.issuer {
		if tr = v.trusted[iss]; tr == nil {
			return cacheEntry{}, errIssuer
		}
		pr = tr.profile
	}
	if err := pr.checkHeader(t.header); err != nil {
		return cacheEntry{}, err
	}
	// Claims before keys: a token that cannot pass never costs a JWKS
	// fetch or a signature check.
	p, err := pr.principal(t.claims, now)
	if err != nil {
		return cacheEntry{}, err
	}
	var pub crypto.PublicKey
	if tr == nil {
		k := v.opts.Keys.lookupOrReload(ctx, t.header.kid)
		if k == nil {
			return cacheEntry{}, errUnknownKey
		}
		if k.alg != t.header.alg {
			return cacheEntry{}, errAlgorithm
		}
		pub = k.pub
	} else {
		k := tr.keys.lookup(ctx, t.header.kid)
		if k == nil {
			return cacheEntry{}, errUnknownKey
		}
		if k.alg != "" && k.alg != t.header.alg || !keyFitsAlg(k.pub, t.header.alg) {
			return cacheEntry{}, errAlgorithm
		}
		pub = k.pub
	}
	// The signature, and once more the registered claims, through
	// golang-jwt with the algorithm fixed by the key.
	if _, err := pr.parsers[t.header.alg].Parse(raw, func(*jwt.Token) (any, error) { return pub, nil }); err != nil {
		return cacheEntry{}, jwtError(err)
	}
	return cacheEntry{p: p, kid: t.header.kid, tr: tr}, nil
}

func jwtError(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return errExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return errAudience
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return errIssuer
	}
	return errMalformed
}

package token

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Defaults shared by Issuer and Verifier.
const (
	// DefaultAudience is the aud of tollgate's access tokens.
	DefaultAudience = "tollgate"
	// DefaultInternalAudience is the aud of tokens minted for upstreams.
	DefaultInternalAudience = "tollgate-internal"
	// TypeAccessToken is the typ header of access tokens (RFC 9068).
	TypeAccessToken = "at+jwt"
)

// IssuerOptions configure an Issuer.
type IssuerOptions struct {
	// Issuer is the iss claim, the gateway's public URL. Required.
	Issuer string
	// Audience is the aud claim of access tokens. Defaults to
	// DefaultAudience.
	Audience string
	// TTL is the lifetime of access tokens. Defaults to 15 minutes.
	TTL time.Duration
	// InternalAudience is the aud of internal tokens. Defaults to
	// DefaultInternalAudience.
	InternalAudience string
	// InternalTTL is the lifetime of internal tokens. Defaults to 1 minute.
	InternalTTL time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// AccessClaims are what an access token says about its holder.
type AccessClaims struct {
	Subject  string // sub: user id. Required.
	TenantID string
	Role     string
	Scopes   []string
	Plan     string
	// SessionID is the refresh-token family issued with the token (sid);
	// revoking the family revokes the token. Optional.
	SessionID string
	// TTL overrides IssuerOptions.TTL for this token when positive (for
	// example "tollgate token mint --ttl 1h").
	TTL time.Duration
}

// Issuer signs access tokens with the "access" keys and internal tokens
// for upstreams with the "internal" keys.
type Issuer struct {
	access, internal *KeyManager
	opts             IssuerOptions
}

// NewIssuer returns an Issuer. internal may be nil when no internal tokens
// are minted.
func NewIssuer(access, internal *KeyManager, opts IssuerOptions) (*Issuer, error) {
	opts.Audience = cmp.Or(opts.Audience, DefaultAudience)
	opts.InternalAudience = cmp.Or(opts.InternalAudience, DefaultInternalAudience)
	opts.TTL = cmp.Or(opts.TTL, 15*time.Minute)
	opts.InternalTTL = cmp.Or(opts.InternalTTL, time.Minute)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	switch {
	case opts.Issuer == "":
		return nil, fmt.Errorf("token issuer: issuer URL required")
	case access == nil || access.Purpose() != PurposeAccess:
		return nil, fmt.Errorf("token issuer: an access key manager is required")
	case internal != nil && internal.Purpose() != PurposeInternal:
		return nil, fmt.Errorf("token issuer: internal keys must have purpose %q", PurposeInternal)
	case opts.TTL < 0 || opts.InternalTTL < 0:
		return nil, fmt.Errorf("token issuer: negative lifetime")
	}
	return &Issuer{access: access, internal: internal, opts: opts}, nil
}

// Issuer returns the iss of the tokens it signs.
func (i *Issuer) Issuer() string { return i.opts.Issuer }

// TTL returns the default access-token lifetime.
func (i *Issuer) TTL() time.Duration { return i.opts.TTL }

// claimSet is the payload of tollgate's tokens (RFC 9068).
type claimSet struct {
	Iss      string `json:"iss"`
	Sub      string `json:"sub"`
	Aud      string `json:"aud"`
	Exp      int64  `json:"exp"`
	Iat      int64  `json:"iat"`
	Nbf      int64  `json:"nbf"`
	JTI      string `json:"jti"`
	TenantID string `json:"tenant_id,omitempty"`
	Role     string `json:"role,omitempty"`
	Scope    string `json:"scope,omitempty"`
	Plan     string `json:"plan,omitempty"`
	Sid      string `json:"sid,omitempty"`
}

// Issue signs an access token for c and returns it with its expiry.
func (i *Issuer) Issue(ctx context.Context, c AccessClaims) (string, time.Time, error) {
	ttl := i.opts.TTL
	if c.TTL > 0 {
		ttl = c.TTL
	}
	return i.sign(ctx, i.access, i.opts.Audience, ttl, c)
}

// IssueInternal signs a short-lived token for an upstream with the
// internal key, carrying the identity of p. audience "" means
// IssuerOptions.InternalAudience.
func (i *Issuer) IssueInternal(ctx context.Context, p *tollgate.Principal, audience string) (string, time.Time, error) {
	if i.internal == nil {
		return "", time.Time{}, fmt.Errorf("issue internal token: no internal keys configured")
	}
	c := AccessClaims{Subject: p.UserID, TenantID: p.TenantID, Role: p.Role, Scopes: p.Scopes, Plan: p.Plan}
	return i.sign(ctx, i.internal, cmp.Or(audience, i.opts.InternalAudience), i.opts.InternalTTL, c)
}

func (i *Issuer) sign(_ context.Context, km *KeyManager, aud string, ttl time.Duration, c AccessClaims) (string, time.Time, error) {
	if c.Subject == "" {
		return "", time.Time{}, fmt.Errorf("issue token: subject required")
	}
	for _, s := range []string{c.Subject, c.TenantID, c.Role, c.Plan, c.SessionID} {
		if !cleanClaim(s) {
			return "", time.Time{}, fmt.Errorf("issue token: control characters in a claim")
		}
	}
	k, err := km.signingKey()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issue token: %w", err)
	}
	now := i.opts.Now().Truncate(time.Second)
	exp := now.Add(ttl)
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
		Kid string `json:"kid"`
	}{k.alg, TypeAccessToken, k.kid})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issue token: %w", err)
	}
	payload, err := json.Marshal(claimSet{
		Iss: i.opts.Issuer, Sub: c.Subject, Aud: aud,
		Exp: exp.Unix(), Iat: now.Unix(), Nbf: now.Unix(), JTI: randomID(16),
		TenantID: c.TenantID, Role: c.Role, Scope: strings.Join(c.Scopes, " "), Plan: c.Plan, Sid: c.SessionID,
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issue token: %w", err)
	}
	signingInput := b64(header) + "." + b64(payload)
	sig, err := k.method.Sign(signingInput, k.priv)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return signingInput + "." + b64(sig), exp, nil
}

// cleanClaim reports whether s holds no control characters (C0, DEL, C1)
// and is valid UTF-8 without a byte-order mark.
func cleanClaim(s string) bool {
	for _, r := range s {
		if r < 0x20 || r >= 0x7f && r < 0xa0 || r == 0xfeff || r == 0xfffd {
			return false
		}
	}
	return true
}

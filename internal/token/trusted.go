package token

import (
	"fmt"
	"net/url"
	"slices"
	"time"
)

// TrustedIssuer is an external identity provider whose tokens are
// accepted, verified against its own JWKS, algorithms and audience only.
type TrustedIssuer struct {
	// Issuer is the exact iss of its tokens. Required.
	Issuer string
	// JWKSURL is where its key set is fetched. Required; http or https.
	JWKSURL string
	// Audience the tokens must hold in aud. Required.
	Audience string
	// Algorithms accepted; asymmetric only. Defaults to [RS256].
	Algorithms []string
	// Claims maps its claims to tenant, role, scope and plan.
	Claims ClaimsMapping
	// RolePriority chooses the role when the role claim is an array.
	RolePriority []string
	// Typ, when set, is the typ header its tokens must carry (compared
	// case-insensitively, "application/" prefix allowed). Defaults to "":
	// typ is not checked.
	Typ string
	// DefaultPlan is the plan of its users when no claim names one.
	DefaultPlan string
	// RefreshInterval bounds how often a token with an unknown kid makes
	// its key set be fetched again. Defaults to JWKSOptions.RefetchInterval.
	RefreshInterval time.Duration
	// MaxStale is how long its keys are still used after its JWKS stopped
	// answering. Defaults to JWKSOptions.MaxStale.
	MaxStale time.Duration
}

type trusted struct {
	profile *profile
	keys    *remoteKeys
}

func newTrusted(t TrustedIssuer, leeway time.Duration, jwks JWKSOptions, now func() time.Time) (*trusted, error) {
	if len(t.Algorithms) == 0 {
		t.Algorithms = []string{RS256}
	}
	switch {
	case t.Issuer == "":
		return nil, fmt.Errorf("trusted issuer: issuer required")
	case t.Audience == "":
		return nil, fmt.Errorf("trusted issuer %s: audience required", t.Issuer)
	case t.RefreshInterval < 0 || t.MaxStale < 0:
		return nil, fmt.Errorf("trusted issuer %s: refresh_interval and max_stale must not be negative", t.Issuer)
	}
	if t.RefreshInterval > 0 {
		jwks.RefetchInterval = t.RefreshInterval
	}
	if t.MaxStale > 0 {
		// Keys are refreshed before they turn stale.
		jwks.MaxStale = t.MaxStale
		jwks.MaxRefresh = min(jwks.MaxRefresh, t.MaxStale)
		jwks.MinRefresh = min(jwks.MinRefresh, jwks.MaxRefresh)
	}
	u, err := url.Parse(t.JWKSURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("trusted issuer %s: jwks_url must be an http(s) URL", t.Issuer)
	}
	for _, alg := range t.Algorithms {
		if _, ok := asymmetricMethods[alg]; !ok {
			return nil, fmt.Errorf("trusted issuer %s: algorithm %q not accepted (asymmetric JWS algorithms only)", t.Issuer, alg)
		}
	}
	pr := newProfile(t.Issuer, t.Audience, t.Typ, slices.Clone(t.Algorithms), leeway, now)
	pr.external = true
	pr.mapping = t.Claims.withDefaults()
	pr.roles = slices.Clone(t.RolePriority)
	pr.plan = t.DefaultPlan
	rk := &remoteKeys{url: t.JWKSURL, algs: pr.algs, opts: jwks, now: now}
	rk.lastTry.Store(-1 << 62)
	return &trusted{profile: pr, keys: rk}, nil
}

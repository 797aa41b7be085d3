package token

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// profile is what one issuer's tokens must look like: tollgate's own, or
// one trusted external issuer. A token is checked against its own issuer's
// profile only.
type profile struct {
	issuer   string
	audience string
	// typ is the required typ header; "" accepts any (external issuers
	// without a configured typ).
	typ      string
	external bool
	algs     []string
	parsers  map[string]*jwt.Parser // by alg: golang-jwt as a second check
	mapping  ClaimsMapping
	roles    []string // preferred roles when the role claim is an array
	plan     string   // default plan of external users
	leeway   time.Duration
}

func newProfile(issuer, audience, typ string, algs []string, leeway time.Duration, now func() time.Time) *profile {
	p := &profile{issuer: issuer, audience: audience, typ: typ, algs: algs, leeway: leeway, parsers: map[string]*jwt.Parser{}}
	for _, alg := range algs {
		p.parsers[alg] = jwt.NewParser(
			jwt.WithValidMethods([]string{alg}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(leeway),
			jwt.WithIssuer(issuer),
			jwt.WithAudience(audience),
			jwt.WithStrictDecoding(),
			jwt.WithJSONNumber(),
			jwt.WithTimeFunc(now),
		)
	}
	return p
}

// checkHeader checks alg against the issuer's algorithms and typ.
func (pr *profile) checkHeader(h header) error {
	if !slices.Contains(pr.algs, h.alg) {
		return errAlgorithm
	}
	if h.thumbprint && !pr.external {
		return errHeader
	}
	switch {
	case pr.typ == "":
		return nil
	case !pr.external && h.typ == pr.typ:
		return nil
	case pr.external && (strings.EqualFold(h.typ, pr.typ) || strings.EqualFold(h.typ, "application/"+pr.typ)):
		return nil
	}
	return errType
}

// checkTimes checks exp (required), nbf and iat (required for our own
// tokens) as numbers, within the leeway.
func (pr *profile) checkTimes(c map[string]any, now time.Time) (iat, exp time.Time, err error) {
	exp, ok := numericDate(c, "exp", true)
	if !ok {
		return iat, exp, errClaims
	}
	iat, ok = numericDate(c, "iat", !pr.external)
	if !ok {
		return iat, exp, errClaims
	}
	nbf, ok := numericDate(c, "nbf", false)
	if !ok {
		return iat, exp, errClaims
	}
	switch {
	case !now.Before(exp.Add(pr.leeway)):
		return iat, exp, errExpired
	case nbf.After(now.Add(pr.leeway)), iat.After(now.Add(pr.leeway)):
		return iat, exp, errNotYetValid
	}
	return iat, exp, nil
}

// checkAudience accepts aud as a string or an array of strings that holds
// the expected audience exactly.
func (pr *profile) checkAudience(c map[string]any) error {
	switch aud := c["aud"].(type) {
	case string:
		if aud == pr.audience {
			return nil
		}
	case []any:
		found := false
		for _, a := range aud {
			s, ok := a.(string)
			if !ok {
				return errAudience
			}
			found = found || s == pr.audience
		}
		if found {
			return nil
		}
	}
	return errAudience
}

// principal checks the claims of a token whose signature is valid and
// builds the caller's identity from them.
func (pr *profile) principal(c map[string]any, now time.Time) (*tollgate.Principal, error) {
	if iss, _ := c["iss"].(string); iss != pr.issuer {
		return nil, errIssuer
	}
	if err := pr.checkAudience(c); err != nil {
		return nil, err
	}
	iat, exp, err := pr.checkTimes(c, now)
	if err != nil {
		return nil, err
	}
	p := &tollgate.Principal{Issuer: pr.issuer, IssuedAt: iat, Expires: exp, External: pr.external}
	var ok bool
	if p.UserID, ok = claimString(c, "sub"); !ok || p.UserID == "" {
		return nil, errClaims
	}
	if p.JTI, ok = claimString(c, "jti"); !ok || (!pr.external && p.JTI == "") {
		return nil, errClaims
	}
	if pr.external {
		err = pr.mapClaims(c, p)
	} else {
		err = ownClaims(c, p)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// ownClaims reads tollgate's own claims: optional strings.
func ownClaims(c map[string]any, p *tollgate.Principal) error {
	var scope string
	for name, dst := range map[string]*string{"tenant_id": &p.TenantID, "role": &p.Role, "plan": &p.Plan, "scope": &scope, "sid": &p.SessionID} {
		s, ok := claimString(c, name)
		if !ok {
			return errClaims
		}
		*dst = s
	}
	p.Scopes = strings.Fields(scope)
	return nil
}

// claimString returns an optional string claim; ok is false when it is
// present with another type or holds control characters.
func claimString(c map[string]any, name string) (string, bool) {
	v, present := c[name]
	if !present {
		return "", true
	}
	s, isString := v.(string)
	return s, isString && cleanClaim(s)
}

// numericDate reads a NumericDate claim: a JSON number (never a string,
// boolean or null), finite and positive. ok is false when it is malformed,
// or absent while required.
func numericDate(c map[string]any, name string, required bool) (time.Time, bool) {
	v, present := c[name]
	if !present {
		return time.Time{}, !required
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 || f > 1<<40 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

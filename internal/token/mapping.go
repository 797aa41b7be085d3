package token

import (
	"cmp"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// ClaimsMapping names the claims of an external issuer's tokens that carry
// tollgate's identity fields. A path may descend into objects with dots
// ("realm_access.roles"); the value may be a string or an array of strings.
type ClaimsMapping struct {
	// TenantID claim path. Defaults to "tenant_id". An array must hold
	// exactly one tenant.
	TenantID string
	// Role claim path. Defaults to "role". For an array, the first of the
	// issuer's RolePriority present wins, else the first element.
	Role string
	// Scope claim path: a space-separated string or an array. Defaults to
	// "scope".
	Scope string
	// Plan claim path. Defaults to "plan"; absent means the issuer's
	// DefaultPlan.
	Plan string
}

func (m ClaimsMapping) withDefaults() ClaimsMapping {
	m.TenantID = cmp.Or(m.TenantID, "tenant_id")
	m.Role = cmp.Or(m.Role, "role")
	m.Scope = cmp.Or(m.Scope, "scope")
	m.Plan = cmp.Or(m.Plan, "plan")
	return m
}

// claimPath follows a dotted path through nested objects.
func claimPath(c map[string]any, path string) (any, bool) {
	var cur any = c
	for part := range strings.SplitSeq(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// claimStrings reads a mapped claim as a list: a string is one element
// (split on spaces when split is set), an array must hold only strings.
// ok is false for any other type or for control characters.
func claimStrings(c map[string]any, path string, split bool) ([]string, bool) {
	v, present := claimPath(c, path)
	if !present {
		return nil, true
	}
	var out []string
	switch v := v.(type) {
	case string:
		if split {
			out = strings.Fields(v)
		} else if v != "" {
			out = []string{v}
		}
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
	default:
		return nil, false
	}
	for _, s := range out {
		if !cleanClaim(s) {
			return nil, false
		}
	}
	return out, true
}

// mapClaims fills p's tenant, role, scopes and plan from an external
// issuer's claims as its mapping says.
func (pr *profile) mapClaims(c map[string]any, p *tollgate.Principal) error {
	m := pr.mapping
	tenants, ok := claimStrings(c, m.TenantID, false)
	if !ok || len(tenants) > 1 {
		return errClaims
	}
	roles, ok := claimStrings(c, m.Role, false)
	if !ok {
		return errClaims
	}
	if p.Scopes, ok = claimStrings(c, m.Scope, true); !ok {
		return errClaims
	}
	plans, ok := claimStrings(c, m.Plan, false)
	if !ok || len(plans) > 1 {
		return errClaims
	}
	if len(tenants) == 1 {
		p.TenantID = tenants[0]
	}
	p.Role = pickRole(roles, pr.roles)
	p.Plan = pr.plan
	if len(plans) == 1 {
		p.Plan = plans[0]
	}
	return nil
}

func pickRole(roles, priority []string) string {
	for _, r := range priority {
		if slices.Contains(roles, r) {
			return r
		}
	}
	if len(roles) > 0 {
		return roles[0]
	}
	return ""
}

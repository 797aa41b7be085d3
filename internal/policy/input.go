package policy

import (
	"fmt"

	"cel.dev/cel-go/cel"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// InputRules are the compiled rules of a job model: CEL expressions over
// claims (as for routes), input, the job's validated input with defaults
// filled, and media, the facts of its file inputs by name (content_type,
// bytes, and width and height of images), e.g.
// `claims.plan == "pro" || media.photo.width <= 680`.
type InputRules struct {
	rules []rule
	empty map[string]any
}

// CompileInputRules builds a job model's rules; nil, nil when there are
// none. Errors name the failing rule, e.g. "rules[0]: ...".
func CompileInputRules(rules []config.Rule) (*InputRules, error) {
	if len(rules) == 0 {
		return nil, nil
	}
	dyn := cel.MapType(cel.StringType, cel.DynType)
	env, err := cel.NewEnv(cel.Variable("claims", dyn), cel.Variable("input", dyn), cel.Variable("media", dyn))
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	p := &InputRules{empty: map[string]any{}}
	for j, rc := range rules {
		ru, _, err := compileRule(env, rc)
		if err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", j, err)
		}
		p.rules = append(p.rules, ru)
	}
	return p, nil
}

// Check returns nil when every rule holds for the caller and input; else
// EForbidden with the first failing rule's message, or EInvalid naming
// what the input lacks when a rule cannot be evaluated.
func (p *InputRules) Check(pr *tollgate.Principal, input, media map[string]any) error {
	if p == nil {
		return nil
	}
	claims := p.empty
	if pr != nil {
		scopes := pr.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		claims = map[string]any{"sub": pr.UserID, "tenant_id": pr.TenantID, "role": pr.Role,
			"scope": scopes, "plan": pr.Plan, "iss": pr.Issuer}
	}
	if media == nil {
		media = p.empty
	}
	vars := map[string]any{"claims": claims, "input": input, "media": media}
	for i := range p.rules {
		if err := p.rules[i].eval(vars); err != nil {
			return err
		}
	}
	return nil
}

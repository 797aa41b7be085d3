package policy

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"

	"github.com/tollgate/tollgate/internal/config"
)

// costLimit bounds the work of one rule evaluation, so a rule cannot stall
// the hot path whatever the body holds.
const costLimit = 100_000

// rule is one compiled CEL expression.
type rule struct {
	prg     cel.Program
	message string
}

func newEnv() (*cel.Env, error) {
	dyn := cel.MapType(cel.StringType, cel.DynType)
	return cel.NewEnv(
		cel.Variable("claims", dyn),
		cel.Variable("request", dyn),
		cel.Variable("body", dyn),
	)
}

func compileRule(env *cel.Env, rc config.Rule) (rule, uses, error) {
	if strings.TrimSpace(rc.Expr) == "" {
		return rule{}, uses{}, errors.New("empty expression")
	}
	ast, iss := env.Compile(rc.Expr)
	if iss.Err() != nil {
		return rule{}, uses{}, fmt.Errorf("%q: %w", rc.Expr, iss.Err())
	}
	if !ast.OutputType().IsEquivalentType(cel.BoolType) && !ast.OutputType().IsEquivalentType(cel.DynType) {
		return rule{}, uses{}, fmt.Errorf("%q: evaluates to %s, want bool", rc.Expr, ast.OutputType())
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(costLimit))
	if err != nil {
		return rule{}, uses{}, fmt.Errorf("%q: %w", rc.Expr, err)
	}
	var u uses
	for _, ref := range ast.NativeRep().ReferenceMap() {
		switch ref.Name {
		case "claims":
			u.claims = true
		case "request":
			u.request = true
		case "body":
			u.body = true
		}
	}
	return rule{prg: prg, message: rc.Message}, u, nil
}

// eval reports whether the rule holds; an evaluation error is a refusal.
func (r *rule) eval(vars map[string]any) bool {
	out, _, err := r.prg.Eval(vars)
	if err != nil {
		return false
	}
	return out == types.True
}

// activation builds the variables the rules reference; the others are
// empty maps.
func (p *Policy) activation(in Input, body any) map[string]any {
	vars := map[string]any{"claims": p.empty, "request": p.empty, "body": p.empty}
	if p.uses.claims && in.Principal != nil {
		pr := in.Principal
		scopes := pr.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		vars["claims"] = map[string]any{
			"sub": pr.UserID, "tenant_id": pr.TenantID, "role": pr.Role,
			"scope": scopes, "plan": pr.Plan, "iss": pr.Issuer,
		}
	}
	if p.uses.request && in.Request != nil {
		vars["request"] = requestVars(in.Request)
	}
	if m, ok := body.(map[string]any); ok && p.uses.body {
		vars["body"] = m
	}
	return vars
}

func requestVars(r *http.Request) map[string]any {
	q := map[string]any{}
	for k, v := range r.URL.Query() {
		if len(v) > 0 {
			q[k] = v[0]
		}
	}
	h := make(map[string]any, len(r.Header))
	for k, v := range r.Header {
		if len(v) > 0 {
			h[strings.ToLower(k)] = v[0]
		}
	}
	return map[string]any{"method": r.Method, "path": r.URL.Path, "query": q, "headers": h}
}

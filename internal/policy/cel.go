package policy

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// costLimit bounds the work of one rule evaluation, so a rule cannot stall
// the hot path whatever the body holds.
const costLimit = 100_000

// rule is one compiled CEL expression.
type rule struct {
	prg     cel.Program
	message string
	// methods the rule judges; nil judges every method, and a rule that
	// reads the body without naming methods judges those that carry one.
	methods  []string
	readBody bool
	// paths are the variable paths the expression names, such as
	// "body.max_tokens", to name what a request lacks.
	paths []string
}

// varPath matches a variable path in an expression: body.max_tokens,
// request.query.size, body["n"].
var varPath = regexp.MustCompile(`\b(?:body|claims|request)(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\s*"[^"]*"\s*\])+`)

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
	ru := rule{prg: prg, message: rc.Message, methods: rc.Methods, readBody: u.body}
	for _, m := range varPath.FindAllString(rc.Expr, -1) {
		ru.paths = append(ru.paths, indexToDot.ReplaceAllString(m, ".$1"))
	}
	return ru, u, nil
}

var indexToDot = regexp.MustCompile(`\[\s*"([^"]*)"\s*\]`)

// judges reports whether the rule applies to a request of method.
func (r *rule) judges(method string) bool {
	if len(r.methods) > 0 {
		return slices.Contains(r.methods, method)
	}
	return !r.readBody || !bodylessMethod(method)
}

// eval returns nil when the rule holds, EForbidden with the rule's
// message when it is false, and EInvalid naming what the request lacks
// when it cannot be evaluated (a missing field, a value of another type).
func (r *rule) eval(vars map[string]any) error {
	out, _, err := r.prg.Eval(vars)
	switch {
	case err != nil:
		return r.unevaluable(err)
	case out == types.True:
		return nil
	case out == types.False:
		return &tollgate.Error{Code: tollgate.EForbidden, Message: r.message}
	}
	return tollgate.Errorf(tollgate.EInvalid, "the route's rule cannot judge this request: it evaluates to %v, not true or false", out)
}

func (r *rule) unevaluable(err error) error {
	msg := err.Error()
	if key, ok := strings.CutPrefix(msg, "no such key: "); ok {
		missing := key
		for _, p := range r.paths {
			if strings.HasSuffix(p, "."+key) {
				missing = p
				break
			}
		}
		return tollgate.Errorf(tollgate.EInvalid, "this request has no %s, which the route's rule needs", missing)
	}
	if strings.HasPrefix(msg, "no such overload") {
		return tollgate.Errorf(tollgate.EInvalid, "the route's rule cannot judge this request: a value among %s has another type than the rule expects", strings.Join(r.paths, ", "))
	}
	return tollgate.Errorf(tollgate.EInvalid, "the route's rule cannot judge this request: %s", msg)
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

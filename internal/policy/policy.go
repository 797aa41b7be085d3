package policy

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// Policy is the compiled rules and schema of one route.
type Policy struct {
	rules  []rule
	schema *schema
	uses   uses
	empty  map[string]any // never written; stands in for unused variables
}

// uses records which CEL variables the rules reference, so a check builds
// only those.
type uses struct {
	claims, request, body bool
}

// Compile builds the policy of a route. It returns nil, nil when the route
// has neither rules nor a schema. Errors name the failing rule, e.g.
// "rules[1]: undeclared reference to 'bdy'".
func Compile(r *config.Route) (*Policy, error) {
	if len(r.Rules) == 0 && r.Schema == "" {
		return nil, nil
	}
	p := &Policy{empty: map[string]any{}}
	if len(r.Rules) > 0 {
		env, err := newEnv()
		if err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
		for j, rc := range r.Rules {
			ru, u, err := compileRule(env, rc)
			if err != nil {
				return nil, fmt.Errorf("rules[%d]: %w", j, err)
			}
			p.rules = append(p.rules, ru)
			p.uses.claims = p.uses.claims || u.claims
			p.uses.request = p.uses.request || u.request
			p.uses.body = p.uses.body || u.body
		}
	}
	if r.Schema != "" {
		s, err := compileSchema(r.Name, r.Schema)
		if err != nil {
			return nil, fmt.Errorf("schema: %w", err)
		}
		p.schema = s
	}
	return p, nil
}

// NeedsBody reports whether checking a request needs its body read.
func (p *Policy) NeedsBody() bool {
	return p != nil && (p.uses.body || p.schema != nil)
}

// Input is what a check looks at.
type Input struct {
	Principal *tollgate.Principal // nil on public routes
	Request   *http.Request
	// Body is the request body when NeedsBody; nil otherwise.
	Body []byte
}

// Check returns nil when the request satisfies the schema and every rule.
// The schema applies to every body, and to an empty one except on GET,
// HEAD, DELETE and OPTIONS.
// A schema violation is EInvalid naming the first failing location. A rule
// judges only the requests of its methods (see config.Rule); one that is
// false is EForbidden with its message, and one that cannot be evaluated
// (a missing body field) is EInvalid naming what is missing.
func (p *Policy) Check(in Input) error {
	if p == nil {
		return nil
	}
	var body any
	if p.NeedsBody() && len(in.Body) > 0 {
		if err := json.Unmarshal(in.Body, &body); err != nil {
			if p.schema != nil {
				return tollgate.Errorf(tollgate.EInvalid, "request body is not valid JSON")
			}
			body = nil
		}
	}
	if p.schema != nil && (len(in.Body) > 0 || !bodyless(in.Request)) {
		if err := p.schema.validate(body); err != nil {
			return err
		}
	}
	if len(p.rules) == 0 {
		return nil
	}
	method := ""
	if in.Request != nil {
		method = in.Request.Method
	}
	var vars map[string]any
	for i := range p.rules {
		if !p.rules[i].judges(method) {
			continue
		}
		if vars == nil {
			vars = p.activation(in, body)
		}
		if err := p.rules[i].eval(vars); err != nil {
			return err
		}
	}
	return nil
}

// bodyless reports a request whose method carries no body (GET, HEAD,
// DELETE, OPTIONS); the schema applies to it only when it sent one anyway.
func bodyless(r *http.Request) bool {
	return r != nil && bodylessMethod(r.Method)
}

// bodylessMethod reports a method whose requests carry no body.
func bodylessMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}

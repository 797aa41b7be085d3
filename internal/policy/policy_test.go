package policy_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/policy"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func mustCompile(t *testing.T, r config.Route) *policy.Policy {
	t.Helper()
	p, err := policy.Compile(&r)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

func TestRules(t *testing.T) {
	free := &tollgate.Principal{UserID: "u1", TenantID: "t1", Role: "user", Plan: "free", Scopes: []string{"infer:text"}, Issuer: "http://gw"}
	pro := &tollgate.Principal{UserID: "u2", TenantID: "t2", Role: "user", Plan: "pro", Scopes: []string{"infer:text", "infer:image"}}
	for _, tc := range []struct {
		name    string
		expr    string
		who     *tollgate.Principal
		target  string
		body    string
		allowed bool
	}{
		{"plan or small request: pro", `claims.plan == "pro" || body.max_tokens <= 1024`, pro, "/x", `{"max_tokens": 4096}`, true},
		{"plan or small request: free small", `claims.plan == "pro" || body.max_tokens <= 1024`, free, "/x", `{"max_tokens": 512}`, true},
		{"plan or small request: free large", `claims.plan == "pro" || body.max_tokens <= 1024`, free, "/x", `{"max_tokens": 4096}`, false},
		{"has() guards a missing field", `!has(body.width) || body.width <= 680`, free, "/x", `{}`, true},
		{"image width", `claims.plan != "free" || body.width <= 680`, free, "/x", `{"width": 1024}`, false},
		{"scope list", `"infer:image" in claims.scope`, pro, "/x", `{}`, true},
		{"scope list missing", `"infer:image" in claims.scope`, free, "/x", `{}`, false},
		{"query", `request.query.size == "small"`, free, "/x?size=small", ``, true},
		{"header lowercased", `request.headers["x-mode"] == "fast"`, free, "/x", ``, true},
		{"method and path", `request.method == "POST" && request.path.startsWith("/x")`, free, "/x", ``, true},
		{"issuer and tenant", `claims.iss == "http://gw" && claims.tenant_id == "t1"`, free, "/x", ``, true},
		{"non-object body is empty", `size(body) == 0`, free, "/x", `[1,2]`, true},
		{"no principal on public routes", `size(claims) == 0`, nil, "/x", ``, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustCompile(t, config.Route{Name: "r", Rules: []config.Rule{{Expr: tc.expr, Message: "refused: " + tc.name}}})
			req := httptest.NewRequest("POST", tc.target, nil)
			req.Header.Set("X-Mode", "fast")
			err := p.Check(policy.Input{Principal: tc.who, Request: req, Body: []byte(tc.body)})
			if tc.allowed && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.allowed {
				if tollgate.ErrorCode(err) != tollgate.EForbidden || tollgate.ErrorMessage(err) != "refused: "+tc.name {
					t.Fatalf("err = %v, want EForbidden with the rule's message", err)
				}
			}
		})
	}
}

// TestRuleThatCannotJudge: a rule judges only the requests of its methods
// (by default, when it reads the body, those that carry one), and a
// request it cannot evaluate is told what it lacks, not the rule's message.
func TestRuleThatCannotJudge(t *testing.T) {
	free := &tollgate.Principal{UserID: "u1", Plan: "free"}
	const message = "free plan: at most 1024 tokens"
	tokens := config.Rule{Expr: `claims.plan == "pro" || body.max_tokens <= 1024`, Message: message}
	for _, tc := range []struct {
		name, method, body string
		rule               config.Rule
		wantCode           string // "" allowed
		wantMessage        string
	}{
		{"a GET is not judged by a body rule", "GET", "", tokens, "", ""},
		{"a POST without the field is told what is missing", "POST", `{"model":"m"}`, tokens, tollgate.EInvalid, "body.max_tokens"},
		{"a POST without a body is told what is missing", "POST", "", tokens, tollgate.EInvalid, "body.max_tokens"},
		{"a POST over the limit gets the rule's message", "POST", `{"max_tokens":4096}`, tokens, tollgate.EForbidden, message},
		{"an index names the field", "POST", `{}`, config.Rule{Expr: `body["n"] < 3`}, tollgate.EInvalid, "body.n"},
		{"a value of another type", "POST", `{"max_tokens":"many"}`, tokens, tollgate.EInvalid, "body.max_tokens"},
		{"methods: the rule judges only those", "PUT", `{"max_tokens":4096}`, config.Rule{Expr: tokens.Expr, Message: message, Methods: []string{"POST"}}, "", ""},
		{"methods: GET when named", "GET", "", config.Rule{Expr: `request.query.size == "small"`, Message: message, Methods: []string{"GET"}}, tollgate.EInvalid, "request.query.size"},
		{"a rule without body judges every method", "GET", "", config.Rule{Expr: `claims.plan == "pro"`, Message: message}, tollgate.EForbidden, message},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustCompile(t, config.Route{Name: "r", Rules: []config.Rule{tc.rule}})
			err := p.Check(policy.Input{Principal: free, Request: httptest.NewRequest(tc.method, "/v1/chat/completions", nil), Body: []byte(tc.body)})
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if tollgate.ErrorCode(err) != tc.wantCode || !strings.Contains(tollgate.ErrorMessage(err), tc.wantMessage) {
				t.Fatalf("err = %v (%s), want %s naming %q", err, tollgate.ErrorCode(err), tc.wantCode, tc.wantMessage)
			}
			if tc.wantCode == tollgate.EInvalid && strings.Contains(tollgate.ErrorMessage(err), message) {
				t.Fatalf("a request the rule cannot judge got the rule's message: %v", err)
			}
		})
	}
}

func TestNeedsBody(t *testing.T) {
	for _, tc := range []struct {
		route config.Route
		want  bool
	}{
		{config.Route{Rules: []config.Rule{{Expr: `claims.plan == "pro"`}}}, false},
		{config.Route{Rules: []config.Rule{{Expr: `request.method == "GET"`}}}, false},
		{config.Route{Rules: []config.Rule{{Expr: `claims.plan == "pro"`}, {Expr: `body.n < 3`}}}, true},
		{config.Route{Schema: `{"type":"object"}`}, true},
	} {
		if got := mustCompile(t, tc.route).NeedsBody(); got != tc.want {
			t.Errorf("%+v: NeedsBody = %v, want %v", tc.route, got, tc.want)
		}
	}
	var none *policy.Policy
	if none.NeedsBody() || none.Check(policy.Input{}) != nil {
		t.Error("a nil policy must need nothing and allow everything")
	}
	if p, err := policy.Compile(&config.Route{Name: "plain"}); p != nil || err != nil {
		t.Errorf("route without rules: %v, %v; want nil, nil", p, err)
	}
}

func TestSchema(t *testing.T) {
	const schema = `{"type":"object","required":["prompt"],"properties":{
		"prompt":{"type":"string","maxLength":20},
		"width":{"type":"integer","maximum":680}}}`
	file := filepath.Join(t.TempDir(), "schema.json")
	if err := os.WriteFile(file, []byte(schema), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{schema, file} {
		p := mustCompile(t, config.Route{Name: "img", Schema: src})
		for _, tc := range []struct {
			body, wantLoc string
		}{
			{`{"prompt":"a cat","width":512}`, ""},
			{`{"prompt":"a cat","width":1024}`, "/width"},
			{`{"width":512}`, "/"},
			{`{"prompt":42}`, "/prompt"},
			{`not json`, "JSON"},
			{``, "/"},
		} {
			err := p.Check(policy.Input{Request: httptest.NewRequest("POST", "/img", nil), Body: []byte(tc.body)})
			if tc.wantLoc == "" {
				if err != nil {
					t.Errorf("%s: refused: %v", tc.body, err)
				}
				continue
			}
			if tollgate.ErrorCode(err) != tollgate.EInvalid || !strings.Contains(tollgate.ErrorMessage(err), tc.wantLoc) {
				t.Errorf("%s: err = %v, want EInvalid naming %s", tc.body, err, tc.wantLoc)
			}
		}
	}
}

func TestSchemaSkipsBodylessMethods(t *testing.T) {
	p := mustCompile(t, config.Route{Name: "comfy", Schema: `{"type":"object","required":["prompt"]}`})
	if err := p.Check(policy.Input{Request: httptest.NewRequest("GET", "/history", nil)}); err != nil {
		t.Errorf("GET without a body: %v", err)
	}
	if err := p.Check(policy.Input{Request: httptest.NewRequest("GET", "/history", nil), Body: []byte(`{}`)}); tollgate.ErrorCode(err) != tollgate.EInvalid {
		t.Errorf("GET with a body that misses prompt: %v, want EInvalid", err)
	}
	if err := p.Check(policy.Input{Request: httptest.NewRequest("POST", "/prompt", nil)}); tollgate.ErrorCode(err) != tollgate.EInvalid {
		t.Errorf("POST without a body: %v, want EInvalid", err)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		route config.Route
		want  string
	}{
		{config.Route{Rules: []config.Rule{{Expr: `claims.plan == "pro"`}, {Expr: `bdy.x < 3`}}}, "rules[1]"},
		{config.Route{Rules: []config.Rule{{Expr: `claims.plan ==`}}}, "rules[0]"},
		{config.Route{Rules: []config.Rule{{Expr: `1 + 2`}}}, "want bool"},
		{config.Route{Rules: []config.Rule{{Expr: `  `}}}, "rules[0]"},
		{config.Route{Schema: `{"type": 12}`}, "schema"},
		{config.Route{Schema: `{"type": `}, "schema"},
		{config.Route{Schema: `/does/not/exist.json`}, "schema"},
	} {
		_, err := policy.Compile(&tc.route)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want it to name %s", tc.route, err, tc.want)
		}
	}
}

package proxy_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/proxy"
)

func TestModelAndTenantRouting(t *testing.T) {
	llama := newUpstream(t, "llama", fakeLLM("llama", nil, nil))
	qwen := newUpstream(t, "qwen", fakeLLM("qwen", nil, nil))
	dedicated := newUpstream(t, "dedicated", fakeLLM("dedicated", nil, nil))
	g := setup(t, fmt.Sprintf(`
routes:
  - name: llm
    type: openai
    path: /v1/
    scopes: [infer:text]
    models: {llama-3-8b: [%s], qwen-2-7b: [%s]}
    tenants: {initech: [%s]}
`, llama.URL, qwen.URL, dedicated.URL), proxy.Options{})

	chat := func(token, body string) (int, string) {
		res := do(t, "POST", g.URL+"/v1/chat/completions", token, strings.NewReader(body))
		return res.StatusCode, readAll(t, res.Body)
	}
	t.Run("model selects its pool", func(t *testing.T) {
		for model, want := range map[string]string{"llama-3-8b": "llama", "qwen-2-7b": "qwen"} {
			status, body := chat("tok-alice", `{"model":"`+model+`","messages":[]}`)
			if status != 200 || !strings.Contains(body, "hi from "+want) {
				t.Errorf("%s: %d %s, want an answer from %s", model, status, body, want)
			}
		}
	})
	t.Run("tenant has a dedicated pool", func(t *testing.T) {
		status, body := chat("tok-carol", `{"model":"llama-3-8b","messages":[]}`)
		if status != 200 || !strings.Contains(body, "hi from dedicated") {
			t.Errorf("%d %s, want an answer from the dedicated pool", status, body)
		}
	})
	t.Run("unknown model", func(t *testing.T) {
		res := do(t, "POST", g.URL+"/v1/chat/completions", "tok-alice", strings.NewReader(`{"model":"gpt-9","messages":[]}`))
		wantStatus(t, res, 404)
		if e := decodeError(t, res); e.Error.Code != "model_not_found" || !strings.Contains(e.Error.Message, "gpt-9") {
			t.Errorf("error %+v", e.Error)
		}
	})
	t.Run("missing model", func(t *testing.T) {
		res := do(t, "POST", g.URL+"/v1/chat/completions", "tok-alice", strings.NewReader(`{"messages":[]}`))
		wantStatus(t, res, 400)
		if e := decodeError(t, res); e.Error.Code != "invalid_request_error" {
			t.Errorf("error %+v", e.Error)
		}
	})
	t.Run("invalid JSON", func(t *testing.T) {
		res := do(t, "POST", g.URL+"/v1/chat/completions", "tok-alice", strings.NewReader(`{"model":`))
		wantStatus(t, res, 400)
	})
	t.Run("models list", func(t *testing.T) {
		res := do(t, "GET", g.URL+"/v1/models", "tok-alice", nil)
		wantStatus(t, res, 200)
		var list struct {
			Object string `json:"object"`
			Data   []struct {
				ID     string `json:"id"`
				Object string `json:"object"`
			} `json:"data"`
		}
		if err := json.NewDecoder(res.Body).Decode(&list); err != nil {
			t.Fatal(err)
		}
		if list.Object != "list" || len(list.Data) != 2 || list.Data[0].ID != "llama-3-8b" || list.Data[1].ID != "qwen-2-7b" || list.Data[0].Object != "model" {
			t.Errorf("list %+v", list)
		}
		for _, u := range []*upstream{llama, qwen, dedicated} {
			if n := u.hits.Load(); n != 1 {
				t.Errorf("%s served %d requests; /v1/models must not be forwarded", u.name, n)
			}
		}
	})
	t.Run("models list needs the route's scope", func(t *testing.T) {
		wantStatus(t, do(t, "GET", g.URL+"/v1/models", "tok-bob", nil), 403)
	})
}

func TestRulesAndSchemaRefuse(t *testing.T) {
	up := newUpstream(t, "up", nil)
	g := setup(t, fmt.Sprintf(`
routes:
  - name: colorize
    path: /colorize
    upstreams: [%s]
    rules:
      - {expr: 'claims.plan == "pro" || body.width <= 680', message: "free plan: at most 680 px"}
    schema: '{"type":"object","required":["image"],"properties":{"width":{"type":"integer"}}}'
`, up.URL), proxy.Options{})

	res := do(t, "POST", g.URL+"/colorize", "tok-alice", strings.NewReader(`{"image":"x","width":1024}`))
	wantStatus(t, res, 403)
	if e := decodeError(t, res); e.Error.Message != "free plan: at most 680 px" || e.Error.Code != "insufficient_scope" {
		t.Errorf("rule refusal %+v", e.Error)
	}
	res = do(t, "POST", g.URL+"/colorize", "tok-alice", strings.NewReader(`{"image":"x","width":"wide"}`))
	wantStatus(t, res, 400)
	if e := decodeError(t, res); !strings.Contains(e.Error.Message, "/width") {
		t.Errorf("schema refusal %+v, want it to name /width", e.Error)
	}
	if n := up.hits.Load(); n != 0 {
		t.Fatalf("upstream called %d times by refused requests", n)
	}
	// The same requests pass for a pro caller and a small image, with the
	// body forwarded intact.
	wantStatus(t, do(t, "POST", g.URL+"/colorize", "tok-carol", strings.NewReader(`{"image":"x","width":1024}`)), 200)
	wantStatus(t, do(t, "POST", g.URL+"/colorize", "tok-alice", strings.NewReader(`{"image":"x","width":512}`)), 200)
	if got := string(up.last(t).Body); got != `{"image":"x","width":512}` {
		t.Errorf("upstream body %q", got)
	}
}

func TestNewRejectsBadRules(t *testing.T) {
	for _, tc := range []struct{ route, want string }{
		{`{name: chat, path: /c, upstreams: ["http://127.0.0.1:1"], rules: [{expr: "true"}, {expr: "body.x <"}]}`, `routes[0] "chat": rules[1]`},
		{`{name: img, path: /i, upstreams: ["http://127.0.0.1:1"], schema: '{"type": 3}'}`, `routes[0] "img": schema`},
	} {
		cfg := "routes:\n  - " + tc.route + "\n"
		_, err := newProxy(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New: %v, want an error naming %s", err, tc.want)
		}
	}
}

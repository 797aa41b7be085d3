package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// errorMessage is the OpenAI-shaped error a caller reads.
func errorMessage(t *testing.T, body []byte) (code, message string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Error.Code, e.Error.Message
}

// TestRefusalsACallerCanActOn: a budget refusal says what the call
// reserves and what is left, even while something is left; a rate-limit
// refusal names the limit with its period.
func TestRefusalsACallerCanActOn(t *testing.T) {
	up := newUpstream(t)
	g := setup(t, `plans:
  metered: {budget: {amount: "0.025", period: month}}
  limited: {rate_limit: 2/m}
routes:
  - name: ocr
    path: /ocr/
    upstreams: [`+up.URL+`]
    price: {per_request: "0.01"}
`)
	g.mustCLI("user", "add", "alice", "--password", "alice-password", "--plan", "metered")
	g.mustCLI("user", "add", "bob", "--password", "bob-password", "--plan", "limited")

	t.Run("budget", func(t *testing.T) {
		alice := g.login("alice", "alice-password").AccessToken
		for range 2 {
			if r, b := g.do("POST", "/ocr/page", alice, `{}`); r.StatusCode != 200 {
				t.Fatalf("within budget: %d %s", r.StatusCode, b)
			}
		}
		r, b := g.do("POST", "/ocr/page", alice, `{}`)
		code, msg := errorMessage(t, b)
		want := "this call may cost up to 0.010000, more than the 0.005000 left of the user budget of 0.025000 per month"
		if r.StatusCode != 429 || code != "insufficient_quota" || !strings.Contains(msg, want) {
			t.Fatalf("third call: %d %s %q, want 429 insufficient_quota saying %q", r.StatusCode, code, msg, want)
		}
		_, me := g.do("GET", "/v1/me", alice, "")
		if !strings.Contains(string(me), `"remaining":"0.005000"`) {
			t.Fatalf("/v1/me does not show the 0.005000 the refusal names: %s", me)
		}
	})
	t.Run("rate limit", func(t *testing.T) {
		bob := g.login("bob", "bob-password").AccessToken
		var last []byte
		status := 0
		for i := range 3 {
			r, b := g.do("POST", "/ocr/page", bob, `{}`)
			status, last = r.StatusCode, b
			if i < 2 && status != 200 {
				t.Fatalf("call %d within 2/m: %d %s", i+1, status, b)
			}
		}
		code, msg := errorMessage(t, last)
		if status != 429 || code != "rate_limit_exceeded" || !strings.Contains(msg, "the user limit of 2/m") {
			t.Fatalf("third call at 2/m: %d %s %q, want 429 naming \"the user limit of 2/m\"", status, code, msg)
		}
	})
}

// TestReadmeRouteRule runs the README's route rule through the gateway:
// GET /v1/models is not judged by it, a chat call without max_tokens is
// told what is missing, and only a call over the limit gets its message.
func TestReadmeRouteRule(t *testing.T) {
	up := newUpstream(t)
	g := setup(t, fmt.Sprintf(`routes:
  - name: chat
    path: /v1/
    type: openai
    upstreams: [%[1]s]
    models: {llama-3-8b: [%[1]s]}
    scopes: [infer:text]
    methods: [GET, POST]
    rules:
      - expr: 'claims.plan == "pro" || body.max_tokens <= 1024'
        message: "free plan: at most 1024 tokens"
`, up.URL))
	g.mustCLI("user", "add", "fred", "--password", "fred-password")
	fred := g.login("fred", "fred-password").AccessToken
	const chat = `{"model":"llama-3-8b","messages":[{"role":"user","content":"hi"}]%s}`

	if r, b := g.do("GET", "/v1/models", fred, ""); r.StatusCode != 200 || !strings.Contains(string(b), "llama-3-8b") {
		t.Fatalf("GET /v1/models: %d %s", r.StatusCode, b)
	}
	r, b := g.do("POST", "/v1/chat/completions", fred, fmt.Sprintf(chat, ""))
	if code, msg := errorMessage(t, b); r.StatusCode != 400 || !strings.Contains(msg, "body.max_tokens") || strings.Contains(msg, "free plan") {
		t.Fatalf("chat without max_tokens: %d %s %q, want 400 naming body.max_tokens", r.StatusCode, code, msg)
	}
	r, b = g.do("POST", "/v1/chat/completions", fred, fmt.Sprintf(chat, `,"max_tokens":4096`))
	if _, msg := errorMessage(t, b); r.StatusCode != 403 || msg != "free plan: at most 1024 tokens" {
		t.Fatalf("chat over the limit: %d %q, want 403 with the rule's message", r.StatusCode, msg)
	}
	before := up.hits.Load()
	if r, b := g.do("POST", "/v1/chat/completions", fred, fmt.Sprintf(chat, `,"max_tokens":512`)); r.StatusCode != 200 {
		t.Fatalf("chat within the limit: %d %s", r.StatusCode, b)
	}
	if up.hits.Load() != before+1 {
		t.Fatal("the call within the limit did not reach the upstream")
	}
}

package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/proxy"
)

func TestErrorShapes(t *testing.T) {
	up := newUpstream(t, "up", nil)
	slow := newUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // answers only after the gateway gave up
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()

	g := setup(t, fmt.Sprintf(`
routes:
  - {name: text, path: /text, upstreams: [%[1]s], scopes: [infer:text], max_body: 1KiB}
  - {name: admin, path: /admin-tools/, upstreams: [%[1]s], roles: [admin]}
  - {name: only-post, path: /post, upstreams: [%[1]s], methods: [POST]}
  - {name: dead, path: /dead, upstreams: [%[2]s]}
  - {name: slow, path: /slow, upstreams: [%[3]s], timeout: 50ms}
`, up.URL, dead, slow.URL), proxy.Options{})

	big := strings.Repeat("x", 2048)
	for _, tc := range []struct {
		name, method, path, token string
		body                      io.Reader
		status                    int
		code, wwwAuth             string
	}{
		{"no token", "GET", "/text", "", nil, 401, "invalid_token", `Bearer realm="tollgate", error="invalid_token"`},
		{"unknown token", "GET", "/text", "tok-mallory", nil, 401, "invalid_token", `Bearer realm="tollgate", error="invalid_token"`},
		{"missing scope", "GET", "/text", "tok-bob", nil, 403, "insufficient_scope", `Bearer realm="tollgate", error="insufficient_scope"`},
		{"missing role", "GET", "/admin-tools/x", "tok-alice", nil, 403, "insufficient_scope", `Bearer realm="tollgate", error="insufficient_scope"`},
		{"unknown path", "GET", "/nowhere", "tok-alice", nil, 404, "not_found", ""},
		{"dot segments", "GET", "/admin-tools/../text", "tok-carol", nil, 400, "invalid_request_error", ""},
		{"wrong method", "GET", "/post", "tok-alice", nil, 405, "method_not_allowed", ""},
		{"body too large", "POST", "/text", "tok-alice", strings.NewReader(big), 413, "request_too_large", ""},
		{"upstream down", "GET", "/dead", "tok-alice", nil, 502, "upstream_error", ""},
		{"upstream timeout", "GET", "/slow", "tok-alice", nil, 504, "upstream_timeout", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := do(t, tc.method, g.URL+tc.path, tc.token, tc.body)
			wantStatus(t, res, tc.status)
			if got := res.Header.Get("WWW-Authenticate"); got != tc.wwwAuth {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tc.wwwAuth)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			e := decodeError(t, res)
			if e.Error.Code != tc.code || e.Error.Message == "" || e.Error.Type == "" {
				t.Errorf("error = %+v, want code %q with a message and type", e.Error, tc.code)
			}
		})
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("upstream called %d times by refused requests", n)
	}
	t.Run("streamed body too large", func(t *testing.T) {
		// A body of unknown length is streamed, so the upstream sees the
		// start of it; the client still gets 413 when it runs over.
		res := do(t, "POST", g.URL+"/text", "tok-alice", io.MultiReader(strings.NewReader(big)))
		wantStatus(t, res, 413)
		if e := decodeError(t, res); e.Error.Code != "request_too_large" {
			t.Errorf("code %q", e.Error.Code)
		}
	})
	t.Run("allowed role and method pass", func(t *testing.T) {
		wantStatus(t, do(t, "GET", g.URL+"/admin-tools/x", "tok-carol", nil), 200)
		wantStatus(t, do(t, "POST", g.URL+"/post", "tok-alice", strings.NewReader("{}")), 200)
		if got := up.last(t).Path; got != "/post" {
			t.Errorf("upstream path %q", got)
		}
	})
}

func TestDrain(t *testing.T) {
	gate := make(chan struct{})
	llm := newUpstream(t, "llm", fakeLLM("llm", gate, nil))
	up := newUpstream(t, "up", nil)
	g := setup(t, fmt.Sprintf(`
routes:
  - {name: open, path: /open, upstreams: [%s], public: true}
  - {name: llm, path: /v1/, type: openai, upstreams: [%s]}
`, up.URL, llm.URL), proxy.Options{})
	wantStatus(t, do(t, "GET", g.URL+"/open", "", nil), 200)

	stream := do(t, "POST", g.URL+"/v1/chat/completions", "tok-alice", strings.NewReader(`{"model":"m","stream":true}`))
	wantStatus(t, stream, 200)
	br := bufio.NewReader(stream.Body)
	if ev := readEvent(t, br); ev != sse(chunk1) {
		t.Fatalf("first event %q", ev)
	}

	g.proxy.Drain()
	res := do(t, "GET", g.URL+"/open", "", nil)
	wantStatus(t, res, 503)
	if e := decodeError(t, res); e.Error.Code != "service_unavailable" {
		t.Errorf("code %q", e.Error.Code)
	}
	if up.hits.Load() != 1 {
		t.Errorf("upstream hits %d, want 1", up.hits.Load())
	}
	// The stream that was in flight finishes.
	close(gate)
	if rest := readAll(t, br); rest != sse(chunk2, "[DONE]") {
		t.Errorf("rest of the stream %q", rest)
	}
}

func TestReadBodyLimit(t *testing.T) {
	llm := newUpstream(t, "llm", fakeLLM("llm", nil, nil))
	g := setup(t, fmt.Sprintf(`
routes:
  - {name: llm, path: /v1/, type: openai, upstreams: [%s], max_body: 1KiB}
`, llm.URL), proxy.Options{})
	big := `{"model":"m","prompt":"` + strings.Repeat("x", 2048) + `"}`
	for name, body := range map[string]io.Reader{
		"announced length": strings.NewReader(big),
		"chunked":          io.MultiReader(strings.NewReader(big)),
	} {
		res := do(t, "POST", g.URL+"/v1/completions", "tok-alice", body)
		wantStatus(t, res, 413)
		if e := decodeError(t, res); e.Error.Code != "request_too_large" {
			t.Errorf("%s: code %q", name, e.Error.Code)
		}
	}
	if n := llm.hits.Load(); n != 0 {
		t.Errorf("upstream called %d times", n)
	}
	wantStatus(t, do(t, "POST", g.URL+"/v1/completions", "tok-alice", io.MultiReader(strings.NewReader(`{"model":"m"}`))), 200)
}

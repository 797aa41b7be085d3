package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/tollgate/tollgate/internal/proxy"
	"github.com/tollgate/tollgate/internal/tollgate"
	"testing"
)

// spoofs are identity headers a client tries to set itself.
var spoofHeaders = []string{
	"X-User-ID", "mallory",
	"x-tenant-id", "evil-corp",
	"X_User_Role", "admin",
	"X-User-Scopes", "*",
	"X-User-Plan", "enterprise",
	"X-Tollgate-Token", "forged",
	"X-Tollgate-Anything", "forged",
	"X-Request-ID", "spoofed-id",
	"X-Forwarded-For", "203.0.113.9",
	// Naming identity headers as hop-by-hop must not remove them upstream.
	"Connection", "X-User-ID, X-Tenant-ID, X-Request-ID",
}

func TestIdentityHeaders(t *testing.T) {
	up := newUpstream(t, "up", nil)
	failing := newUpstream(t, "failing", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	g := setup(t, fmt.Sprintf(`
headers: {strip_cookies: [tollgate_session]}
routes:
  - {name: private, path: /private, upstreams: [%[1]s], scopes: [infer:text]}
  - {name: open, path: /open, upstreams: [%[1]s], public: true}
  - {name: broken, path: /broken, upstreams: [%[2]s], public: true}
`, up.URL, failing.URL), proxy.Options{})

	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	noSpoofs := func(t *testing.T, h http.Header) {
		t.Helper()
		for _, name := range []string{"X-Tollgate-Token", "X-Tollgate-Anything", "X_user_role", "X_User_Role", "Authorization"} {
			if v := h.Values(name); len(v) > 0 {
				t.Errorf("upstream received %s: %q", name, v)
			}
		}
		if got := h.Get("X-Request-Id"); !hexID.MatchString(got) {
			t.Errorf("upstream X-Request-ID = %q, want a generated id", got)
		}
		if got := h.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "127.0.0.1" {
			t.Errorf("upstream X-Forwarded-For = %q, want only the peer's address", got)
		}
	}

	t.Run("authenticated route", func(t *testing.T) {
		hdr := append([]string{"Cookie", "tollgate_session=secret; theme=dark"}, spoofHeaders...)
		res := do(t, "GET", g.URL+"/private", "tok-alice", nil, hdr...)
		wantStatus(t, res, 200)
		got := up.last(t).Header
		noSpoofs(t, got)
		for name, want := range map[string]string{
			"X-User-Id": "alice", "X-Tenant-Id": "acme", "X-User-Role": "user",
			"X-User-Scopes": "infer:text", "X-User-Plan": "free", "Cookie": "theme=dark",
		} {
			if v := got.Values(name); len(v) != 1 || v[0] != want {
				t.Errorf("upstream %s = %q, want [%q]", name, v, want)
			}
		}
		if res.Header.Get("X-Request-Id") != got.Get("X-Request-Id") {
			t.Errorf("response X-Request-ID %q differs from the upstream's %q", res.Header.Get("X-Request-Id"), got.Get("X-Request-Id"))
		}
	})
	t.Run("public route", func(t *testing.T) {
		res := do(t, "GET", g.URL+"/open", "", nil, spoofHeaders...)
		wantStatus(t, res, 200)
		got := up.last(t).Header
		noSpoofs(t, got)
		for _, name := range []string{"X-User-Id", "X-Tenant-Id", "X-User-Scopes", "X-User-Plan"} {
			if v := got.Values(name); len(v) > 0 {
				t.Errorf("public route: upstream received %s = %q", name, v)
			}
		}
	})
	t.Run("upstream error", func(t *testing.T) {
		res := do(t, "GET", g.URL+"/broken", "", nil, spoofHeaders...)
		wantStatus(t, res, 500)
		noSpoofs(t, failing.last(t).Header)
	})
	t.Run("the authenticator sees no spoofed header", func(t *testing.T) {
		seen := &recordingAuth{next: newTestAuth()}
		g := setup(t, fmt.Sprintf("routes:\n  - {name: private, path: /private, upstreams: [%s]}\n", up.URL), proxy.Options{Auth: seen})
		wantStatus(t, do(t, "GET", g.URL+"/private", "", nil, spoofHeaders...), 401)
		seen.mu.Lock()
		defer seen.mu.Unlock()
		for _, name := range []string{"X-User-Id", "X-Tenant-Id", "X_user_role", "X_User_Role", "X-Tollgate-Token", "X-Request-Id"} {
			if v := seen.header.Values(name); len(v) > 0 {
				t.Errorf("the authenticator saw %s: %q", name, v)
			}
		}
	})
	for _, tc := range []struct{ name, path, token string }{
		{"unauthenticated", "/private", ""},
		{"unknown path", "/nowhere", "tok-alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := up.hits.Load()
			res := do(t, "GET", g.URL+tc.path, tc.token, nil, spoofHeaders...)
			if res.StatusCode < 400 {
				t.Fatalf("status %d, want an error", res.StatusCode)
			}
			if id := res.Header.Get("X-Request-Id"); !hexID.MatchString(id) {
				t.Errorf("X-Request-ID = %q, want a generated id", id)
			}
			if up.hits.Load() != before {
				t.Errorf("upstream was called")
			}
		})
	}
}

func TestRequestIDFromTrustedProxy(t *testing.T) {
	up := newUpstream(t, "up", nil)
	g := setup(t, fmt.Sprintf(`
server: {trusted_proxies: [127.0.0.0/8, "::1/128"]}
routes:
  - {name: open, path: /open, upstreams: [%s], public: true}
`, up.URL), proxy.Options{})
	for _, tc := range []struct{ sent, want string }{
		{"abc-123.X_y", "abc-123.X_y"},
		{"bad id with spaces", ""},
		{strings.Repeat("a", 129), ""},
	} {
		res := do(t, "GET", g.URL+"/open", "", nil, "X-Request-ID", tc.sent)
		wantStatus(t, res, 200)
		got := up.last(t).Header.Get("X-Request-Id")
		if tc.want != "" && got != tc.want {
			t.Errorf("sent %q: upstream got %q, want it kept", tc.sent, got)
		}
		if tc.want == "" && (got == tc.sent || got == "") {
			t.Errorf("sent %q: upstream got %q, want a generated id", tc.sent, got)
		}
		if res.Header.Get("X-Request-Id") != got {
			t.Errorf("response id %q, upstream id %q", res.Header.Get("X-Request-Id"), got)
		}
	}
	// A trusted proxy's X-Forwarded-For chain is kept and extended.
	wantStatus(t, do(t, "GET", g.URL+"/open", "", nil, "X-Forwarded-For", "203.0.113.9"), 200)
	if got := up.last(t).Header.Get("X-Forwarded-For"); got != "203.0.113.9, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
}

func TestInternalToken(t *testing.T) {
	up := newUpstream(t, "up", nil)
	mint := func(_ context.Context, p *tollgate.Principal, audience string) (string, error) {
		if p.UserID == "bob" {
			return "", errors.New("signing key unavailable")
		}
		return "itok." + p.UserID + "." + audience, nil
	}
	g := setup(t, fmt.Sprintf(`
routes:
  - {name: comfy, path: /comfy/, upstreams: [%[1]s], internal_token: true}
  - {name: plain, path: /plain, upstreams: [%[1]s]}
`, up.URL), proxy.Options{InternalToken: mint})

	wantStatus(t, do(t, "GET", g.URL+"/comfy/prompt", "tok-alice", nil, "X-Tollgate-Token", "forged"), 200)
	if got := up.last(t).Header.Values("X-Tollgate-Token"); len(got) != 1 || got[0] != "itok.alice.comfy" {
		t.Errorf("upstream X-Tollgate-Token = %q, want the minted token only", got)
	}
	wantStatus(t, do(t, "GET", g.URL+"/plain", "tok-alice", nil, "X-Tollgate-Token", "forged"), 200)
	if got := up.last(t).Header.Values("X-Tollgate-Token"); len(got) != 0 {
		t.Errorf("route without internal_token: upstream got %q", got)
	}
	res := do(t, "GET", g.URL+"/comfy/prompt", "tok-bob", nil)
	wantStatus(t, res, 500)
	if e := decodeError(t, res); strings.Contains(e.Error.Message, "signing key") {
		t.Errorf("internal detail leaked: %q", e.Error.Message)
	}
}

func TestUpstreamHeaders(t *testing.T) {
	t.Setenv("TEST_VLLM_KEY", "sk-upstream")
	up := newUpstream(t, "up", nil)
	g := setup(t, fmt.Sprintf(`
routes:
  - name: vllm
    path: /v1/
    type: openai
    upstreams: [%s]
    upstream_headers: {authorization: "Bearer ${TEST_VLLM_KEY}", X-Pass: "a$b"}
`, up.URL), proxy.Options{})
	wantStatus(t, do(t, "POST", g.URL+"/v1/chat/completions", "tok-alice", strings.NewReader(`{"model":"m"}`)), 200)
	h := up.last(t).Header
	if got := h.Values("Authorization"); len(got) != 1 || got[0] != "Bearer sk-upstream" {
		t.Errorf("upstream Authorization = %q, want the configured key, never the caller's token", got)
	}
	if got := h.Get("X-Pass"); got != "a$b" {
		t.Errorf("X-Pass = %q, want a lone $ kept", got)
	}
}

// recordingAuth remembers the headers of the last request it saw.
type recordingAuth struct {
	next   tollgate.Authenticator
	mu     sync.Mutex
	header http.Header
}

func (a *recordingAuth) Authenticate(ctx context.Context, r *http.Request) (*tollgate.Principal, error) {
	a.mu.Lock()
	a.header = r.Header.Clone()
	a.mu.Unlock()
	return a.next.Authenticate(ctx, r)
}

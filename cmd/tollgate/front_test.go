package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestFrontRoutesAsTheMux: every path reaches the handler the ServeMux
// alone would choose, the data plane without the mux where no own
// pattern could match.
func TestFrontRoutesAsTheMux(t *testing.T) {
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, name) })
	}
	f := newFront()
	ref := http.NewServeMux()
	for _, p := range []string{"GET /healthz", "POST /auth/login", "GET /v1/me", "GET /v1/me/usage", "/admin/v1/", "GET /.well-known/jwks.json"} {
		f.Handle(p, named(p))
		ref.Handle(p, named(p))
	}
	data := named("data")
	f.setData(data)
	ref.Handle("/", data)
	for _, tc := range []struct{ method, path string }{
		{"GET", "/healthz"}, {"POST", "/healthz"}, {"GET", "/v1/me"}, {"GET", "/v1/meta"}, {"GET", "/v1/me/usage"},
		{"GET", "/v1/chat/completions"}, {"POST", "/v1/chat/completions"}, {"GET", "/admin/v1"}, {"GET", "/admin/v1/users"},
		{"GET", "/admin/v2"}, {"GET", "/v1//chat"}, {"GET", "/v1/./x"}, {"GET", "/a/../admin/v1/users"},
		{"GET", "/.well-known/jwks.json"}, {"GET", "/"}, {"POST", "/auth/login"}, {"GET", "/auth/login"},
	} {
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		ref.ServeHTTP(want, httptest.NewRequest(tc.method, tc.path, nil))
		f.ServeHTTP(got, httptest.NewRequest(tc.method, tc.path, nil))
		if got.Code != want.Code || got.Body.String() != want.Body.String() || got.Header().Get("Location") != want.Header().Get("Location") {
			t.Errorf("%s %s: got %d %q, the mux alone %d %q", tc.method, tc.path, got.Code, got.Body, want.Code, want.Body)
		}
		if tc.path == "/v1/chat/completions" && f.ownPath(httptest.NewRequest(tc.method, tc.path, nil)) {
			t.Errorf("%s goes through the mux", tc.path)
		}
	}
}

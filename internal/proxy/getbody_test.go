package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/proxy"
)

// TestGetBodyRefused: a GET or HEAD with a body is refused with 400 before
// it reaches the upstream, unless the route allows such bodies.
func TestGetBodyRefused(t *testing.T) {
	up := newUpstream(t, "up", nil)
	g := setup(t, fmt.Sprintf(`
routes:
  - {name: strict, path: /strict/, upstreams: [%[1]s], public: true}
  - {name: lax, path: /lax/, upstreams: [%[1]s], public: true, allow_get_body: true}
`, up.URL), proxy.Options{})

	send := func(t *testing.T, method, path string, body io.Reader) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, g.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	for _, c := range []struct {
		name   string
		method string
		body   func() io.Reader
	}{
		{"GET with Content-Length", "GET", func() io.Reader { return strings.NewReader("GET /x HTTP/1.1\r\n\r\n") }},
		{"GET chunked", "GET", func() io.Reader { return io.MultiReader(strings.NewReader("hidden")) }},
		{"HEAD with Content-Length", "HEAD", func() io.Reader { return strings.NewReader("hidden") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := up.hits.Load()
			res := send(t, c.method, "/strict/a", c.body())
			wantStatus(t, res, http.StatusBadRequest)
			if c.method == "GET" {
				if e := decodeError(t, res); e.Error.Type != "invalid_request_error" || !strings.Contains(e.Error.Message, "body") {
					t.Fatalf("error %+v", e.Error)
				}
			}
			if n := up.hits.Load() - before; n != 0 {
				t.Fatalf("the upstream received %d requests", n)
			}
			res = send(t, c.method, "/lax/a", c.body())
			wantStatus(t, res, http.StatusOK)
			if c.method == "GET" {
				if got := string(up.last(t).Body); got == "" {
					t.Fatal("the route allowing GET bodies forwarded no body")
				}
			}
		})
	}
	t.Run("GET without a body", func(t *testing.T) {
		wantStatus(t, send(t, "GET", "/strict/a", nil), http.StatusOK)
	})
}

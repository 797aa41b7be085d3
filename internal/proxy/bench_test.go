package proxy_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/proxy"
)

// BenchmarkProxy measures the gateway's own cost per request: an
// authenticated GET on an http route, forwarded to a local upstream over
// keep-alive connections, in parallel.
//
//	go test -run '^$' -bench BenchmarkProxy -benchmem ./internal/proxy
func BenchmarkProxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok")
	}))
	b.Cleanup(up.Close)
	for _, bc := range []struct {
		name      string
		accessLog bool
		transport http.RoundTripper // nil: tollgate's own
	}{
		{"handler", false, nil},
		{"handler+accesslog", true, nil},
		// The same gateway on net/http's transport: upstream calls go
		// through httputil.ReverseProxy and http.Transport.
		{"handler-http.Transport", false, &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := fmt.Sprintf(`
server: {access_log: %v}
routes:
  - {name: api, path: /api/, upstreams: [%s], scopes: [infer:text]}
`, bc.accessLog, up.URL)
			g := setup(b, cfg, proxy.Options{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Transport: bc.transport})
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest("GET", "/api/v1/items?x=1", nil)
				req.Header.Set("Authorization", "Bearer tok-alice")
				req.Header.Set("X-User-ID", "mallory")
				req.Header.Set("Accept", "application/json")
				for pb.Next() {
					rec := httptest.NewRecorder()
					r := req.Clone(req.Context())
					g.proxy.ServeHTTP(rec, r)
					if rec.Code != 200 {
						b.Fatalf("status %d", rec.Code)
					}
				}
			})
		})
	}
	// The floor: a bare httputil.ReverseProxy on the same upstream, with no
	// auth, headers, admissions or metrics.
	b.Run("bare-reverseproxy", func(b *testing.B) {
		target, _ := url.Parse(up.URL)
		rp := &httputil.ReverseProxy{
			Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
			Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true},
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			req := httptest.NewRequest("GET", "/api/v1/items?x=1", nil)
			req.Header.Set("Authorization", "Bearer tok-alice")
			req.Header.Set("Accept", "application/json")
			for pb.Next() {
				rec := httptest.NewRecorder()
				rp.ServeHTTP(rec, req.Clone(req.Context()))
				if rec.Code != 200 {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	})
	b.Run("openai", func(b *testing.B) {
		llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`)
		}))
		b.Cleanup(llm.Close)
		g := setup(b, fmt.Sprintf(`
server: {access_log: false}
routes:
  - {name: llm, type: openai, path: /v1/, upstreams: [%s], scopes: [infer:text]}
`, llm.URL), proxy.Options{})
		const body = `{"model":"m","max_tokens":64,"messages":[{"role":"user","content":"Say hi"}]}`
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer tok-alice")
				rec := httptest.NewRecorder()
				g.proxy.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	})
	b.Run("server", func(b *testing.B) {
		g := setup(b, fmt.Sprintf(`
server: {access_log: false}
routes:
  - {name: api, path: /api/, upstreams: [%s], scopes: [infer:text]}
`, up.URL), proxy.Options{})
		tr := &http.Transport{MaxIdleConnsPerHost: 256}
		b.Cleanup(tr.CloseIdleConnections)
		client := &http.Client{Transport: tr}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest("GET", g.URL+"/api/v1/items", nil)
				req.Header.Set("Authorization", "Bearer tok-alice")
				res, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
		})
	})
}

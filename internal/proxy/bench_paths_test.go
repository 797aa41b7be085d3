package proxy_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tollgate/tollgate/internal/proxy"
)

// BenchmarkProxyPaths measures the paths that http.Transport used to
// carry: an HTTPS upstream, a 128 KiB upload and a chunked one, on
// tollgate's own transport and on net/http's (through
// httputil.ReverseProxy, with keep-alive connections, and for HTTPS also
// with a connection per request). cpu-µs/op is the process's CPU time
// (gateway and in-process upstream) per request.
//
//	go test -run '^$' -bench BenchmarkProxyPaths -count 6 ./internal/proxy
func BenchmarkProxyPaths(b *testing.B) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	})
	plain := httptest.NewServer(handler)
	b.Cleanup(plain.Close)
	secure := httptest.NewTLSServer(handler)
	b.Cleanup(secure.Close)
	roots := x509.NewCertPool()
	roots.AddCert(secure.Certificate())
	upload := bytes.Repeat([]byte("u"), 128<<10)

	netHTTP := func(keepAlive bool) proxy.Options {
		return proxy.Options{Transport: viaTransport{&http.Transport{
			MaxIdleConnsPerHost: 256, DisableCompression: true, DisableKeepAlives: !keepAlive,
			TLSClientConfig: &tls.Config{RootCAs: roots},
		}}}
	}
	own := proxy.Options{UpstreamTLS: &tls.Config{RootCAs: roots}}
	type request struct {
		method  string
		body    []byte
		chunked bool
	}
	get, post, chunked := request{method: "GET"}, request{"POST", upload, false}, request{"POST", upload, true}
	for _, bc := range []struct {
		name     string
		upstream string
		opts     proxy.Options
		req      request
	}{
		{"https/own", secure.URL, own, get},
		{"https/http.Transport", secure.URL, netHTTP(true), get},
		{"https/http.Transport-no-keepalive", secure.URL, netHTTP(false), get},
		{"upload-128KiB/own", plain.URL, own, post},
		{"upload-128KiB/http.Transport", plain.URL, netHTTP(true), post},
		{"chunked-128KiB/own", plain.URL, own, chunked},
		{"chunked-128KiB/http.Transport", plain.URL, netHTTP(true), chunked},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bc.opts.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
			g := setup(b, fmt.Sprintf(`
server: {access_log: false}
routes:
  - {name: api, path: /api/, upstreams: [%s], scopes: [infer:text]}
`, bc.upstream), bc.opts)
			b.ReportAllocs()
			cpu := startCPU()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					var body io.Reader
					if bc.req.body != nil {
						body = bytes.NewReader(bc.req.body)
					}
					req := httptest.NewRequest(bc.req.method, "/api/v1/items", body)
					if bc.req.chunked {
						req.ContentLength, req.TransferEncoding = -1, []string{"chunked"}
					}
					req.Header.Set("Authorization", "Bearer tok-alice")
					rec := httptest.NewRecorder()
					g.proxy.ServeHTTP(rec, req)
					if rec.Code != 200 {
						b.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
				}
			})
			b.StopTimer()
			cpu.report(b)
		})
	}
}

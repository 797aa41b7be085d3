package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestWriteRequestMatchesRequestWrite: what the direct path writes parses
// to the same request as what http.Request.Write writes, header for
// header, for every kind of request it takes.
func TestWriteRequestMatchesRequestWrite(t *testing.T) {
	build := func(method, url, body string, edit func(*http.Request)) func() *http.Request {
		return func() *http.Request {
			var rd io.Reader
			if body != "" {
				rd = strings.NewReader(body)
			}
			req, err := http.NewRequest(method, url, rd)
			if err != nil {
				t.Fatal(err)
			}
			req.Header["X-User-Id"] = []string{"usr_1"}
			req.Header["X-Forwarded-For"] = []string{"10.0.0.1, 127.0.0.1"}
			req.Header["Accept"] = []string{"text/event-stream", "application/json"}
			if edit != nil {
				edit(req)
			}
			return req
		}
	}
	cases := map[string]func() *http.Request{
		"GET":           build("GET", "http://up:8000/v1/models?x=1&y=%20z", "", nil),
		"HEAD":          build("HEAD", "http://up:8000/health", "", nil),
		"DELETE":        build("DELETE", "http://up:8000/v1/files/1", "", nil),
		"POST json":     build("POST", "http://up:8000/v1/chat/completions", `{"model":"m","stream":true}`, nil),
		"POST empty":    build("POST", "http://up:8000/v1/x", "", nil),
		"PUT":           build("PUT", "http://up/upload", "data", nil),
		"no user agent": build("GET", "http://up/", "", func(r *http.Request) { r.Header["User-Agent"] = []string{""} }),
		"user agent":    build("GET", "http://up/", "", func(r *http.Request) { r.Header.Set("User-Agent", "curl/8") }),
		"host override": build("GET", "http://10.0.0.5:9000/p", "", func(r *http.Request) { r.Host = "api.example.com" }),
		"close":         build("GET", "http://up/", "", func(r *http.Request) { r.Close = true }),
		"line breaks":   build("GET", "http://up/", "", func(r *http.Request) { r.Header["X-Note"] = []string{"a\r\nInjected: yes", " padded\t"} }),
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			var want, got bytes.Buffer
			if err := mk().Write(&want); err != nil {
				t.Fatal(err)
			}
			req := mk()
			if !Direct(req) {
				t.Fatal("the direct path does not take this request")
			}
			bw := bufio.NewWriter(&got)
			if err := writeRequest(bw, req, nil); err != nil {
				t.Fatal(err)
			}
			bw.Flush()
			a, b := mustRead(t, want.Bytes()), mustRead(t, got.Bytes())
			if a.Method != b.Method || a.RequestURI != b.RequestURI || a.Host != b.Host || a.ContentLength != b.ContentLength || a.Close != b.Close {
				t.Errorf("request line or framing differ:\nRequest.Write: %q\nwriteRequest:  %q", want.String(), got.String())
			}
			for k, v := range a.Header {
				if !slices.Equal(v, b.Header[k]) {
					t.Errorf("header %s: %q, Request.Write sends %q", k, b.Header[k], v)
				}
			}
			if len(a.Header) != len(b.Header) {
				t.Errorf("headers %v, Request.Write sends %v", b.Header, a.Header)
			}
			ab, _ := io.ReadAll(a.Body)
			bb, _ := io.ReadAll(b.Body)
			if !bytes.Equal(ab, bb) {
				t.Errorf("body %q, want %q", bb, ab)
			}
		})
	}
}

func mustRead(t *testing.T, raw []byte) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("written request does not parse: %v\n%q", err, raw)
	}
	return r
}

// BenchmarkWriteRequest compares writeRequest with http.Request.Write for
// a proxied GET with tollgate's identity headers.
func BenchmarkWriteRequest(b *testing.B) {
	req, _ := http.NewRequest("GET", "http://127.0.0.1:8000/v1/chat/completions", nil)
	for _, k := range []string{"X-User-Id", "X-Tenant-Id", "X-User-Role", "X-User-Scopes", "X-User-Plan", "X-Request-Id",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Accept", "Accept-Encoding"} {
		req.Header[k] = []string{"value-of-" + k}
	}
	bw := bufio.NewWriterSize(io.Discard, 4096)
	b.Run("writeRequest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = writeRequest(bw, req, nil)
			bw.Flush()
		}
	})
	b.Run("Request.Write", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = req.Write(bw)
			bw.Flush()
		}
	})
}

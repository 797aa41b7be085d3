package edge

import (
	"bufio"
	"bytes"
	"net/http"
	"reflect"
	"testing"

	"github.com/tollgate/tollgate/internal/h1"
)

// FuzzParseHead: every head the fast path accepts, net/http reads as the
// same request: method, target, URL, host, header, length and close.
func FuzzParseHead(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: gw:8080\r\nContent-Length: 12\r\nauthorization: Bearer t\r\n\r\n",
		"GET /a%2fb/c%20d?q=%zz HTTP/1.1\r\nHost: a\r\nX: 1\r\nx: 2\r\nConnection: close\r\n\r\n",
		"GET /p? HTTP/1.1\r\nhost: [::1]:80\r\nPragma: no-cache\r\n\r\n",
		"GET /a!b/'c' HTTP/1.1\r\nHost: a\r\nX-Pad: \t v \t\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 00\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: cloſe\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: \u212aeep-alive, upgrade\r\nX-User-Id : admin\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
		"GET /public/%2e%2e/admin HTTP/1.1\r\nHost: a\r\nX_User_Id: admin\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	s := New(Options{Handler: http.NotFoundHandler()})
	f.Fuzz(func(t *testing.T, raw []byte) {
		n := h1.HeadEnd(raw)
		if n <= 0 {
			return
		}
		var got request
		if !s.parseHead(raw[:n], &got) {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw[:n])))
		if err != nil {
			t.Fatalf("fast path took a head net/http refuses (%v): %q", err, raw[:n])
		}
		if got.method != want.Method || got.target != want.RequestURI || got.host != want.Host ||
			got.contentLength != want.ContentLength || got.close != want.Close {
			t.Fatalf("head %q: fast path %s %s host=%q cl=%d close=%v; net/http %s %s host=%q cl=%d close=%v", raw[:n],
				got.method, got.target, got.host, got.contentLength, got.close,
				want.Method, want.RequestURI, want.Host, want.ContentLength, want.Close)
		}
		if !reflect.DeepEqual(*got.url, *want.URL) {
			t.Fatalf("head %q: URL %#v, net/http %#v", raw[:n], *got.url, *want.URL)
		}
		if !reflect.DeepEqual(got.header, want.Header) {
			t.Fatalf("head %q: header %v, net/http %v", raw[:n], got.header, want.Header)
		}
	})
}

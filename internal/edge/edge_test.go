package edge_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/edge"
)

// TestResponsesAsNetHTTP: for each handler, the bytes a client gets from
// edge frame the same response as net/http's: status, header, length or
// chunking, body and trailers.
func TestResponsesAsNetHTTP(t *testing.T) {
	big := strings.Repeat("x", 5000)
	cases := []struct {
		name, method string
		h            http.HandlerFunc
	}{
		{"small body gets a length", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok":true}`)
		}},
		{"empty", "GET", func(w http.ResponseWriter, r *http.Request) {}},
		{"large body is chunked", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, big)
		}},
		{"declared length", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5000")
			_, _ = io.WriteString(w, big)
		}},
		{"content type sniffed", "GET", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "<html><body>hi</body></html>")
		}},
		{"no sniffing under content-encoding", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = io.WriteString(w, "<html>")
		}},
		{"head with a length", "HEAD", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "42")
		}},
		{"head writing a body", "HEAD", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "hello")
		}},
		{"no content", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "3")
			w.WriteHeader(http.StatusNoContent)
		}},
		{"not modified", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Etag", `"v1"`)
			w.WriteHeader(http.StatusNotModified)
		}},
		{"status and error body", "POST", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "nope", http.StatusTeapot)
		}},
		{"flushed stream", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
			}
		}},
		{"prefixed trailers", "GET", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "body")
			w.(http.Flusher).Flush()
			w.Header().Set(http.TrailerPrefix+"X-Sum", "abc")
		}},
		{"declared trailers", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Checksum")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "body")
			w.Header().Set("X-Checksum", "123")
		}},
		{"handler asks to close", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "bye")
		}},
		{"identity transfer closes", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Transfer-Encoding", "identity")
			_, _ = io.WriteString(w, "until close")
		}},
		{"line breaks in values", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Note", "a\r\nInjected: yes")
			w.Header()["Bad Name"] = []string{"x"}
		}},
		{"multiple values", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Set-Cookie", "a=1")
			w.Header().Add("Set-Cookie", "b=2")
			w.WriteHeader(http.StatusCreated)
		}},
		{"short of its length", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10")
			_, _ = io.WriteString(w, "abc")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := setup(t, tc.h)
			raw := tc.method + " /x HTTP/1.1\r\nHost: example.test\r\nContent-Length: 0\r\n\r\n"
			got := map[string]string{}
			for name, addr := range map[string]string{"edge": s.edge, "net/http": s.std} {
				cl := dial(t, addr)
				cl.send(raw)
				if tc.name == "short of its length" {
					res, err := http.ReadResponse(cl.br, nil)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := io.ReadAll(res.Body); err == nil {
						t.Errorf("%s: a body short of its length read without error", name)
					}
					got[name] = fmt.Sprintf("%d %d", res.StatusCode, res.ContentLength)
					continue
				}
				got[name] = summary(cl.read(tc.method))
			}
			if got["edge"] != got["net/http"] {
				t.Errorf("edge answered\n%s\nnet/http answered\n%s", got["edge"], got["net/http"])
			}
		})
	}
}

// TestRequestsAsNetHTTP: a handler sees the same request through edge as
// through net/http, and plain requests are served by edge itself.
func TestRequestsAsNetHTTP(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		w.Header().Set("X-Writer", writerKind(w))
		fmt.Fprintf(w, "method=%s uri=%s path=%q raw=%q query=%q force=%v host=%s proto=%s cl=%d close=%v\n",
			r.Method, r.RequestURI, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.URL.ForceQuery, r.Host, r.Proto,
			r.ContentLength, r.Close)
		fmt.Fprintf(w, "body=%q err=%v remote=%v\n", b, err, r.RemoteAddr != "")
		_ = r.Header.Write(w)
	})
	s := setup(t, h)
	cases := map[string]string{
		"get":               "GET /v1/models HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer abc\r\n\r\n",
		"post with body":    "POST /v1/chat/completions HTTP/1.1\r\nHost: gw.test:8080\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"b\"}\r\n",
		"lower-case names":  "GET / HTTP/1.1\r\nhost: gw.test\r\nauthorization: Bearer x\r\nx-stainless-lang: js\r\nx-custom-thing: 1\r\n\r\n",
		"repeated header":   "GET / HTTP/1.1\r\nHost: gw.test\r\nAccept: a\r\naccept: b\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
		"white space":       "GET / HTTP/1.1\r\nHost: gw.test\r\nX-Pad: \t padded \t\r\nX-Empty:\r\n\r\n",
		"query":             "GET /search?q=a+b&x=%20y HTTP/1.1\r\nHost: gw.test\r\n\r\n",
		"force query":       "GET /p? HTTP/1.1\r\nHost: gw.test\r\n\r\n",
		"escaped path":      "GET /a%2Fb/c%20d HTTP/1.1\r\nHost: gw.test\r\n\r\n",
		"unescaped symbols": "GET /a!b/(c)*'d'|e HTTP/1.1\r\nHost: gw.test\r\n\r\n",
		"double slash":      "GET //evil.test/x HTTP/1.1\r\nHost: gw.test\r\n\r\n",
		"pragma":            "GET / HTTP/1.1\r\nHost: gw.test\r\nPragma: no-cache\r\n\r\n",
		"connection close":  "GET / HTTP/1.1\r\nHost: gw.test\r\nConnection: keep-alive, Close\r\n\r\n",
		"ipv6 host":         "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
		"obs-text value":    "GET / HTTP/1.1\r\nHost: gw.test\r\nX-Name: caf\xc3\xa9\r\n\r\n",
		"zero length":       "DELETE /x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 0\r\n\r\n",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) { s.both(t, raw, strings.Fields(raw)[0], servedFast) })
	}
}

// TestHandsOffToNetHTTP: what the fast path does not take is served, or
// refused, by net/http exactly as net/http alone does.
func TestHandsOffToNetHTTP(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Writer", writerKind(w))
		fmt.Fprintf(w, "%s %s %s cl=%d te=%v body=%q host=%q", r.Method, r.URL, r.Proto, r.ContentLength, r.TransferEncoding, b, r.Host)
	})
	s := setup(t, h, func(o *edge.Options) { o.MaxHeaderBytes = 8 << 10 })
	long := strings.Repeat("a", 6000)
	huge := strings.Repeat("b", 20000)
	cases := map[string]string{
		"http/1.0":                "GET /old HTTP/1.0\r\nHost: gw.test\r\n\r\n",
		"chunked upload":          "POST /up HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"expect continue":         "POST /up HTTP/1.1\r\nHost: gw.test\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
		"bare line feeds":         "GET /lf HTTP/1.1\nHost: gw.test\n\n",
		"folded header":           "GET / HTTP/1.1\r\nHost: gw.test\r\nX-Long: a\r\n b\r\n\r\n",
		"length and chunked":      "POST / HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"two lengths":             "POST / HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"two equal lengths":       "POST / HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
		"signed length":           "POST / HTTP/1.1\r\nHost: gw.test\r\nContent-Length: +2\r\n\r\nab",
		"no host":                 "GET / HTTP/1.1\r\nX: y\r\n\r\n",
		"two hosts":               "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"space before colon":      "GET / HTTP/1.1\r\nHost: gw.test\r\nX-Bad : y\r\n\r\n",
		"control byte in value":   "GET / HTTP/1.1\r\nHost: gw.test\r\nX-Bad: a\x01b\r\n\r\n",
		"absolute target":         "GET http://gw.test/abs HTTP/1.1\r\nHost: gw.test\r\n\r\n",
		"asterisk":                "OPTIONS * HTTP/1.1\r\nHost: gw.test\r\n\r\n",
		"head over the buffer":    "GET / HTTP/1.1\r\nHost: gw.test\r\nX-Long: " + long + "\r\n\r\n",
		"head over the limit":     "GET / HTTP/1.1\r\nHost: gw.test\r\nX-Huge: " + huge + "\r\n\r\n",
		"fragment":                "GET /a#frag HTTP/1.1\r\nHost: gw.test\r\n\r\n",
		"host with odd bytes":     "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
		"unknown protocol":        "GET / HTTP/1.2\r\nHost: gw.test\r\n\r\n",
		"lower-case method token": "get / HTTP/1.1\r\nHost: gw.test\r\n\r\n",
	}
	for name, raw := range cases {
		want := servedByNetHTTP
		if name == "lower-case method token" {
			want = servedFast // any token is a method
		}
		t.Run(name, func(t *testing.T) { s.both(t, raw, "GET", want) })
	}
}

package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestSessionPage(t *testing.T) {
	t.Parallel()
	session := &tollgate.Principal{UserID: "usr_1", SessionID: "fam_1", ViaSession: true}
	snippet := `<meta name="csrf-token" content="` + auth.CSRFToken("fam_1") + `"><script src="/ui/assets/csrf.js"></script>`
	gz := func(s string) string {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(s))
		zw.Close()
		return b.String()
	}
	for _, tc := range []struct {
		name        string
		p           *tollgate.Principal
		contentType string
		encoding    string
		csp         string // the answer's Content-Security-Policy
		body        string
		want        string // the body the browser gets
	}{
		{"after head", session, "text/html; charset=utf-8", "", "", "<!doctype html><html><HEAD lang=x><title>a</title></head><body>x</body></html>",
			"<!doctype html><html><HEAD lang=x>" + snippet + "<title>a</title></head><body>x</body></html>"},
		{"header is not head", session, "text/html", "", "", "<html><header>h</header><head></head></html>",
			"<html><header>h</header><head>" + snippet + "</head></html>"},
		{"no head: after html", session, "text/html", "", "", "<html lang=en><p>x</p></html>", "<html lang=en>" + snippet + "<p>x</p></html>"},
		{"a fragment: at the start", session, "text/html", "", "", "<p>x</p>", snippet + "<p>x</p>"},
		{"gzip is decoded", session, "text/html", "gzip", "", gz("<head></head>"), "<head>" + snippet + "</head>"},
		{"brotli passes", session, "text/html", "br", "", "\x0b\x02", "\x0b\x02"},
		{"a nonce policy: the script carries its nonce", session, "text/html", "", "default-src 'self'; script-src 'nonce-r4nd0m' 'strict-dynamic'", "<head></head>",
			"<head>" + strings.Replace(snippet, `csrf.js"`, `csrf.js" nonce="r4nd0m"`, 1) + "</head>"},
		{"script-src-elem decides", session, "text/html", "", "script-src 'nonce-a'; script-src-elem 'self' 'nonce-b'", "<head></head>",
			"<head>" + strings.Replace(snippet, `csrf.js"`, `csrf.js" nonce="b"`, 1) + "</head>"},
		{"a policy of 'self' needs no nonce", session, "text/html", "", "script-src 'self'; style-src 'nonce-x'", "<head></head>", "<head>" + snippet + "</head>"},
		{"not html", session, "application/json", "", "", `{"a":"<head>"}`, `{"a":"<head>"}`},
		{"a bearer caller", &tollgate.Principal{UserID: "usr_1", SessionID: "fam_1"}, "text/html", "", "", "<head></head>", "<head></head>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {tc.contentType}, "Etag": {`"v1"`}},
				Body: io.NopCloser(strings.NewReader(tc.body)), ContentLength: int64(len(tc.body))}
			if tc.csp != "" {
				res.Header.Set("Content-Security-Policy", tc.csp)
			}
			if tc.encoding != "" {
				res.Header.Set("Content-Encoding", tc.encoding)
			}
			SessionPage(tc.p, res)
			got, _ := io.ReadAll(res.Body)
			if string(got) != tc.want {
				t.Fatalf("body %q, want %q", got, tc.want)
			}
			changed := tc.want != tc.body
			if changed {
				if res.ContentLength != int64(len(got)) || res.Header.Get("Content-Length") != strconv.Itoa(len(got)) {
					t.Errorf("length %d / %q, body %d", res.ContentLength, res.Header.Get("Content-Length"), len(got))
				}
				if res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("Etag") != "" || res.Header.Get("Content-Encoding") != "" {
					t.Errorf("headers %v: want no-store, no ETag, no Content-Encoding", res.Header)
				}
			} else if res.Header.Get("Etag") == "" {
				t.Errorf("an answer left alone lost its ETag")
			}
		})
	}
}

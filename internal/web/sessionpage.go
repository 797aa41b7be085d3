package web

import (
	"bytes"
	"compress/gzip"
	"html"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// A page an upstream serves to a browser's session (ComfyUI's or Gradio's
// own UI on a cookie route) makes state-changing calls the gateway
// CSRF-checks, but its scripts know nothing of the token. SessionPage
// gives the page the token and a script that sends it: the same-origin
// file /ui/assets/csrf.js, so a Content-Security-Policy of 'self' allows
// it.

// CSRFScript is the path of the script SessionPage adds.
const CSRFScript = "/ui/assets/csrf.js"

// maxSessionPage bounds the pages SessionPage rewrites; a larger one passes
// unchanged.
const maxSessionPage = 8 << 20

// SessionPage rewrites res, the upstream's answer to a request of p, when
// p came with the session cookie and res is an HTML page: right after its
// <head> (else at its start) it gets <meta name="csrf-token"> with the
// session's token and the script that adds the token to the page's own
// requests (with the nonce of the answer's Content-Security-Policy when
// the policy allows scripts by one). The answer is then never cached (the token is the session's),
// and a gzip-encoded page is sent decoded. Any other answer, or a page
// in an encoding other than gzip, passes unchanged; a body that breaks
// while it is read still breaks where it did.
func SessionPage(p *tollgate.Principal, res *http.Response) {
	if p == nil || !p.ViaSession || res.StatusCode != http.StatusOK || res.Body == nil || res.Body == http.NoBody {
		return
	}
	if mt, _, err := mime.ParseMediaType(res.Header.Get("Content-Type")); err != nil || mt != "text/html" {
		return
	}
	enc := strings.ToLower(strings.TrimSpace(res.Header.Get("Content-Encoding")))
	if enc != "" && enc != "identity" && enc != "gzip" {
		return
	}
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxSessionPage+1))
	if err != nil || len(raw) > maxSessionPage {
		res.Body = readCloser{io.MultiReader(bytes.NewReader(raw), res.Body), res.Body}
		return
	}
	res.Body.Close()
	page := raw
	if enc == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err == nil {
			page, err = io.ReadAll(io.LimitReader(zr, maxSessionPage+1))
		}
		if err != nil || len(page) > maxSessionPage {
			res.Body = io.NopCloser(bytes.NewReader(raw)) // not ours to fix
			return
		}
		res.Header.Del("Content-Encoding")
	}
	page = withCSRF(page, auth.CSRFToken(p.SessionID), scriptNonce(res.Header))
	res.Body = io.NopCloser(bytes.NewReader(page))
	res.ContentLength = int64(len(page))
	h := res.Header
	h.Set("Content-Length", strconv.Itoa(len(page)))
	h.Set("Cache-Control", "no-store")
	h.Del("ETag")
	h.Del("Last-Modified")
	h.Add("Vary", "Cookie")
}

// withCSRF puts the token's meta element and the script, with nonce when
// not empty, into page.
func withCSRF(page []byte, token, nonce string) []byte {
	attr := ""
	if nonce != "" {
		attr = ` nonce="` + html.EscapeString(nonce) + `"`
	}
	snippet := `<meta name="csrf-token" content="` + html.EscapeString(token) + `"><script src="` + CSRFScript + `"` + attr + `></script>`
	at := afterTag(page, "<head")
	if at < 0 {
		at = afterTag(page, "<html")
	}
	if at < 0 {
		at = 0
	}
	out := make([]byte, 0, len(page)+len(snippet))
	out = append(out, page[:at]...)
	out = append(out, snippet...)
	return append(out, page[at:]...)
}

// afterTag returns the offset just past the first start tag named by open
// ("<head"), matched case-insensitively, or -1.
func afterTag(page []byte, open string) int {
	lower := bytes.ToLower(page)
	for from := 0; ; {
		i := bytes.Index(lower[from:], []byte(open))
		if i < 0 {
			return -1
		}
		i += from + len(open)
		if i < len(lower) && (lower[i] == '>' || lower[i] == ' ' || lower[i] == '\t' || lower[i] == '\n' || lower[i] == '\r') {
			if end := bytes.IndexByte(lower[i:], '>'); end >= 0 {
				return i + end + 1
			}
			return -1
		}
		from = i // "<header" is not "<head"
	}
}

type readCloser struct {
	io.Reader
	io.Closer
}

// scriptNonce returns the nonce a Content-Security-Policy of h allows
// scripts by ('nonce-…' in script-src-elem, else script-src, else
// default-src), so the added script runs on a page whose policy allows
// only its own nonce ('strict-dynamic' ignores 'self'). "" when no policy
// names one; a policy of 'self' allows the script as it is.
func scriptNonce(h http.Header) string {
	for _, policy := range h.Values("Content-Security-Policy") {
		directives := map[string][]string{}
		for _, d := range strings.Split(policy, ";") {
			f := strings.Fields(d)
			if len(f) > 0 {
				name := strings.ToLower(f[0])
				if _, seen := directives[name]; !seen { // the first of a name counts
					directives[name] = f[1:]
				}
			}
		}
		for _, name := range []string{"script-src-elem", "script-src", "default-src"} {
			srcs, ok := directives[name]
			if !ok {
				continue
			}
			for _, src := range srcs {
				if len(src) > len("'nonce-'") && strings.HasPrefix(strings.ToLower(src), "'nonce-") && strings.HasSuffix(src, "'") {
					return src[len("'nonce-") : len(src)-1]
				}
			}
			break
		}
	}
	return ""
}

package h1_test

import (
	"bufio"
	"bytes"
	"maps"
	"net/http"
	"net/textproto"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/h1"
)

// framingSeeds are heads from the rows of the HTTP framing case list
// (security/http-framing.md): requests (C rows) and upstream answers
// (U rows), each the exact bytes a row sends.
var framingSeeds = []string{
	// C1: Content-Length and Transfer-Encoding together.
	"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX",
	"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
	// C2: obfuscated Transfer-Encoding.
	"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  chunked\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\vchunked\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	// C3: conflicting or odd Content-Length.
	"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999999\r\n\r\n",
	// C4: bare LF, bare CR, NUL, a space before the colon, obs-fold.
	"GET /a HTTP/1.1\nHost: a\n\n",
	"GET /a HTTP/1.1\r\nHost: a\nX-User-Id: admin\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: a\rX-User-Id: admin\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: a\r\nX-User-Id : admin\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: a\r\nX-A: b\r\n X-User-Id: admin\r\n\r\n",
	// C5: identity header spellings.
	"GET /a HTTP/1.1\r\nHost: a\r\nx-user-id: admin\r\nX-USER-ID: root\r\nX_User_Id: admin\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: a\r\nConnection: X-User-Id, close\r\nX-User-Id: admin\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: a\r\nConnection: keep-alive,\tCLOSE \r\n\r\n",
	// C6: pipelined requests, a body hiding a request, Expect.
	"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\nX-User-Id: admin\r\n\r\n",
	"GET /py/innocent HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\n\r\nGET /admin HTTP/1.1\r\nX-User-ID: admin\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
	// C7: a connection that sends nothing, or a head never finished.
	"",
	"GET /a HTTP/1.1\r\nHost: a\r\nX-Slow: ",
	// C8: traversal on a public prefix.
	"GET /public/../admin HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /public/%2e%2e/admin HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /public/..;/admin HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /public/..%5cadmin HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /public/%252e%252e/admin HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /public%2f..%2fadmin?x=%zz HTTP/1.1\r\nHost: a\r\n\r\n",
	// U1: Content-Length shorter than the body.
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokPOISONED",
	// U2: a second, unsolicited response.
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Poison: 1\r\n\r\nPOISONED",
	// U3: 204 or 304 with a body.
	"HTTP/1.1 204 No Content\r\nContent-Length: 8\r\n\r\nPOISONED",
	"HTTP/1.1 304 Not Modified\r\nContent-Length: 8\r\nEtag: \"x\"\r\n\r\nPOISONED",
	// U4: an unrequested 101.
	"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	// U5: CL and TE together, duplicate CL, bare LF, NUL, obs-fold.
	"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nTransfer-Encoding: chunked\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nContent-Length: 2\r\n\r\n",
	"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
	"HTTP/1.1 200 OK\r\nX-A: b\x00c\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 2\r\n\r\nok",
	// U6: close-delimited, and a close asked for.
	"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody",
	"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\nPragma: no-cache\r\n\r\nok",
	// Odd status lines.
	"HTTP/1.1 2000 OK\r\n\r\n",
	"HTTP/1.1 099\r\n\r\n",
	"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
}

// FuzzHead: the h1 pieces (HeadEnd, Fields, ParseLength, HasToken,
// PragmaNoCache) read a head as net/http does. Whenever they take a head
// as plain (a complete CRLF head, every field line accepted, no
// Transfer-Encoding, at most one valid Content-Length), net/textproto
// reads the same fields, and http.ReadRequest (for a request line) or
// http.ReadResponse (for a status line) reads the same method, target,
// status, header, length and close.
func FuzzHead(f *testing.F) {
	for _, s := range framingSeeds {
		f.Add([]byte(s))
	}
	p := h1.NewParser()
	f.Fuzz(func(t *testing.T, raw []byte) {
		n := h1.HeadEnd(raw)
		checkHeadEnd(t, raw, n)
		if n <= 0 {
			return
		}
		head := string(raw[:n])
		line, rest, _ := strings.Cut(head, "\r\n")
		h, ok := p.Fields(rest)
		if !ok {
			return
		}
		want, err := textproto.NewReader(bufio.NewReader(strings.NewReader(rest))).ReadMIMEHeader()
		if err != nil {
			t.Fatalf("Fields took %q, textproto refuses it: %v", rest, err)
		}
		if !sameHeader(h, http.Header(want)) {
			t.Fatalf("fields %q: Fields %v, textproto %v", rest, h, want)
		}
		length, plain := plainLength(h)
		if !plain {
			return
		}
		if strings.HasPrefix(line, "HTTP/") {
			checkResponse(t, head, line, h, length)
		} else {
			checkRequest(t, head, line, h, length)
		}
	})
}

// checkHeadEnd holds HeadEnd to its contract: n > 0 is the end of the
// first CRLF blank line with no bare-LF blank line before it, -1 a bare
// LF blank line first, 0 neither yet.
func checkHeadEnd(t *testing.T, raw []byte, n int) {
	t.Helper()
	crlf := bytes.Index(raw, []byte("\r\n\r\n"))
	lf := bytes.Index(raw, []byte("\n\n"))
	switch {
	case n > 0:
		if crlf+4 != n || bytes.Contains(raw[:n], []byte("\n\n")) {
			t.Fatalf("HeadEnd(%q) = %d", raw, n)
		}
	case n == 0:
		if crlf >= 0 || lf >= 0 {
			t.Fatalf("HeadEnd(%q) = 0 with a blank line in it", raw)
		}
	case n == -1:
		if lf < 0 || crlf >= 0 && crlf+2 <= lf {
			t.Fatalf("HeadEnd(%q) = -1", raw)
		}
	default:
		t.Fatalf("HeadEnd(%q) = %d", raw, n)
	}
}

// plainLength returns a plain head's body length (-1 when it has none):
// no Transfer-Encoding and at most one Content-Length, which ParseLength
// takes. ok is false for any other head.
func plainLength(h http.Header) (length int64, ok bool) {
	if _, te := h["Transfer-Encoding"]; te {
		return 0, false
	}
	cl, has := h["Content-Length"]
	if !has {
		return -1, true
	}
	if len(cl) != 1 {
		return 0, false
	}
	return h1.ParseLength(cl[0])
}

// closes reports whether the Connection fields ask for a close.
func closes(h http.Header) bool {
	for _, v := range h["Connection"] {
		if h1.HasToken(v, "close") {
			return true
		}
	}
	return false
}

// checkRequest: a request line "METHOD /target HTTP/1.1" with a token
// method and an origin-form target that url.ParseRequestURI takes is
// read by http.ReadRequest as h1 reads it.
func checkRequest(t *testing.T, head, line string, h http.Header, length int64) {
	t.Helper()
	method, rest, _ := strings.Cut(line, " ")
	target, proto, _ := strings.Cut(rest, " ")
	if !h1.ValidName(method) || method == "CONNECT" || proto != "HTTP/1.1" || !strings.HasPrefix(target, "/") || !h1.ValidValue(target) {
		return
	}
	if _, err := url.ParseRequestURI(target); err != nil || len(h["Host"]) > 1 {
		return // refused by net/http's own checks, which h1 leaves to its callers
	}
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
	if err != nil {
		t.Fatalf("h1 took the request head %q, net/http refuses it: %v", head, err)
	}
	want := maps.Clone(h)
	delete(want, "Host")
	h1.PragmaNoCache(want)
	length = max(length, 0)
	if req.Method != method || req.RequestURI != target || req.ContentLength != length || req.Close != closes(h) {
		t.Fatalf("head %q: h1 %s %s cl=%d close=%v; net/http %s %s cl=%d close=%v", head,
			method, target, length, closes(h), req.Method, req.RequestURI, req.ContentLength, req.Close)
	}
	if !sameHeader(want, req.Header) {
		t.Fatalf("head %q: h1 %v, net/http %v", head, want, req.Header)
	}
}

// checkResponse: a status line "HTTP/1.1 ddd[ reason]" of a final answer
// framed by one Content-Length, or a 204 or 304, is read by
// http.ReadResponse as h1 reads it.
func checkResponse(t *testing.T, head, line string, h http.Header, length int64) {
	t.Helper()
	status, ok := strings.CutPrefix(line, "HTTP/1.1 ")
	if !ok || len(status) < 3 || len(status) > 3 && status[3] != ' ' || !h1.ValidValue(status) {
		return
	}
	code, err := strconv.Atoi(status[:3])
	if err != nil || code < 200 || status[0] == '+' || status[0] == '-' {
		return
	}
	if _, ok := h["Trailer"]; ok {
		return // trailers are left to net/http
	}
	bodyless := code == http.StatusNoContent || code == http.StatusNotModified
	if length < 0 && !bodyless {
		return // a close-delimited body is left to net/http
	}
	res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(head)), &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatalf("h1 took the response head %q, net/http refuses it: %v", head, err)
	}
	want := maps.Clone(h)
	if closes(h) {
		delete(want, "Connection")
	}
	h1.PragmaNoCache(want)
	if bodyless {
		length = 0
	}
	if res.StatusCode != code || res.Status != status || res.ContentLength != length || res.Close != closes(h) {
		t.Fatalf("head %q: h1 %d %q cl=%d close=%v; net/http %d %q cl=%d close=%v", head,
			code, status, length, closes(h), res.StatusCode, res.Status, res.ContentLength, res.Close)
	}
	if !sameHeader(want, res.Header) {
		t.Fatalf("head %q: h1 %v, net/http %v", head, want, res.Header)
	}
}

func sameHeader(a, b http.Header) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(map[string][]string(a), map[string][]string(b))
}

// FuzzTokens: the token helpers agree with the rules net/http applies:
// HasToken with a comma list compared in ASCII case only, ParseLength
// with strconv's reading of a decimal Content-Length, TrimOWS with
// textproto's trimming, and a field WriteField writes reads back as one
// field line with that value.
func FuzzTokens(f *testing.F) {
	for _, s := range []struct{ v, tok string }{
		{"keep-alive, close", "close"},
		{"Upgrade", "upgrade"},
		{" \tCLOSE\t ", "close"},
		{"cloſe", "close"},
		{"\u212aeep-alive", "keep-alive"},
		{"5", "0005"},
		{"99999999999999999999", "+5"},
		{"a\r\nX-User-Id: admin", "X-Name"},
	} {
		f.Add(s.v, s.tok)
	}
	f.Fuzz(func(t *testing.T, v, tok string) {
		if got, want := h1.HasToken(v, tok), hasTokenASCII(v, tok); got != want {
			t.Fatalf("HasToken(%q, %q) = %v, want %v", v, tok, got, want)
		}
		for _, s := range []string{v, tok} {
			n, ok := h1.ParseLength(s)
			want, err := strconv.ParseUint(s, 10, 63)
			digits := s != "" && strings.Trim(s, "0123456789") == ""
			switch {
			case ok && (err != nil || int64(want) != n || !digits):
				t.Fatalf("ParseLength(%q) = %d, strconv %d, %v", s, n, want, err)
			case !ok && digits && len(s) <= 18:
				t.Fatalf("ParseLength(%q) refused a length of %d digits", s, len(s))
			}
			if !strings.ContainsAny(s, "\r\n") {
				if got, want := h1.TrimOWS(s), textproto.TrimString(s); got != want {
					t.Fatalf("TrimOWS(%q) = %q, textproto %q", s, got, want)
				}
			}
		}
		checkWriteField(t, tok, v)
	})
}

// hasTokenASCII is net/http's reading of a Connection-style list: comma
// separated, white space around an element ignored, ASCII letters
// compared without case, and nothing else folded.
func hasTokenASCII(v, tok string) bool {
	if tok == "" {
		return false // not a token: no list holds it
	}
	for _, e := range strings.Split(v, ",") {
		e = strings.Trim(e, " \t")
		if len(e) != len(tok) {
			continue
		}
		same := true
		for i := 0; i < len(e) && same; i++ {
			same = lower(e[i]) == lower(tok[i])
		}
		if same {
			return true
		}
	}
	return false
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// checkWriteField: a line WriteField writes is one field line, whose
// value textproto reads as the value with CR and LF made spaces.
func checkWriteField(t *testing.T, name, value string) {
	t.Helper()
	if !h1.ValidName(name) {
		return
	}
	want := h1.TrimOWS(strings.NewReplacer("\r", " ", "\n", " ").Replace(value))
	if !h1.ValidValue(want) {
		return
	}
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	h1.WriteField(w, name, value)
	_ = w.Flush()
	line := b.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\r\n") {
		t.Fatalf("WriteField(%q, %q) wrote %q, not one line", name, value, line)
	}
	got, err := textproto.NewReader(bufio.NewReader(strings.NewReader(line + "\r\n"))).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("WriteField(%q, %q) wrote %q, which textproto refuses: %v", name, value, line, err)
	}
	key := textproto.CanonicalMIMEHeaderKey(name)
	if vs := got[key]; len(got) != 1 || len(vs) != 1 || vs[0] != want {
		t.Fatalf("WriteField(%q, %q) wrote %q, read back as %v; want %s: %q", name, value, line, got, key, want)
	}
}

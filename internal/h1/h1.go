// Package h1 holds the HTTP/1.1 wire parsing shared by tollgate's server
// (internal/edge) and its upstream transport (internal/upstream): finding the
// end of a head, and reading its field lines into an http.Header the way
// net/textproto does, with one allocation for the whole head's text.
// Either caller takes a head only of the plain kind these functions
// accept and leaves every other head to net/http's own parser.
package h1

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
)

// HeadEnd returns the length of the head at the start of buf, its blank
// line included: n > 0 when a complete CRLF head is there; 0 when more
// bytes are needed; -1 when the head ends in a way the fast paths do not
// take (a bare LF line end).
func HeadEnd(buf []byte) int {
	crlf := bytes.Index(buf, []byte("\r\n\r\n"))
	lf := bytes.Index(buf, []byte("\n\n"))
	switch {
	case lf >= 0 && (crlf < 0 || lf < crlf+2):
		return -1
	case crlf >= 0:
		return crlf + 4
	}
	return 0
}

// Parser reads field lines; it interns common names sent in another case.
type Parser struct {
	common map[string]string
}

// NewParser returns a parser that interns the usual request and response
// field names.
func NewParser() *Parser {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control", "Connection",
		"Content-Length", "Content-Type", "Cookie", "Host", "Origin", "Pragma", "Referer", "User-Agent",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id", "X-Real-Ip",
		"Openai-Organization", "Openai-Project", "X-Stainless-Lang", "X-Stainless-Package-Version",
		"X-Stainless-Os", "X-Stainless-Arch", "X-Stainless-Runtime", "X-Stainless-Runtime-Version",
		"X-Stainless-Retry-Count", "X-Stainless-Timeout", "X-Stainless-Async", "Traceparent", "Tracestate",
		"Date", "Server", "Content-Encoding", "Vary", "Etag", "Last-Modified", "Set-Cookie", "Location",
		"Transfer-Encoding", "Keep-Alive", "Retry-After",
	} {
		m[k] = k
	}
	return &Parser{common: m}
}

// Fields parses the field lines of a head: rest runs from the first field
// line through the CRLF of the blank line. Every name and value is a
// slice of rest. It reports false for a line net/textproto would refuse
// or read otherwise (no colon, a name that is not a token, white space
// before the colon, a control byte in a value, obsolete line folding).
func (p *Parser) Fields(rest string) (http.Header, bool) {
	lines := strings.Count(rest, "\r\n") - 1
	if lines < 0 {
		return nil, false
	}
	h := make(http.Header, lines)
	vals := make([]string, lines)
	var keyBuf [64]byte
	for i := 0; i < lines; i++ {
		var line string
		line, rest, _ = strings.Cut(rest, "\r\n")
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !ValidName(line[:colon]) {
			return nil, false
		}
		value := TrimOWS(line[colon+1:])
		if !ValidValue(value) {
			return nil, false
		}
		key := p.canonicalKey(line[:colon], keyBuf[:0])
		if prior, ok := h[key]; ok {
			h[key] = append(prior, value)
			continue
		}
		vals[i] = value
		h[key] = vals[i : i+1 : i+1]
	}
	return h, true
}

// ByteSet returns the set of ASCII letters, digits and the bytes of
// extra, for byte-class tables.
func ByteSet(extra string) (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for i := 0; i < len(extra); i++ {
		t[extra[i]] = true
	}
	return t
}

// tokenByte marks the bytes of an RFC 9110 token (methods and names).
var tokenByte = ByteSet("!#$%&'*+-.^_`|~")

// ValidName reports whether s is a token: a method or a field name.
func ValidName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte[s[i]] {
			return false
		}
	}
	return true
}

// ValidValue accepts field values as net/textproto does: no control
// bytes but horizontal tab.
func ValidValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// TrimOWS trims spaces and tabs at both ends.
func TrimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// ParseLength parses a Content-Length value: digits only, at most 18.
func ParseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// HasToken reports whether the comma-separated list v holds token,
// compared as net/http compares tokens: ASCII letters without case,
// nothing else folded (so "cloſe", with a long s, is not "close"). An
// empty token is in no list.
func HasToken(v, token string) bool {
	if token == "" {
		return false
	}
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if equalFoldASCII(TrimOWS(t), token) {
			return true
		}
	}
	return false
}

// equalFoldASCII reports whether a and b are equal when ASCII letters are
// compared without case.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// canonicalKey returns name in canonical form (textproto's), without
// allocating when name is already canonical or a common name.
func (p *Parser) canonicalKey(name string, buf []byte) string {
	upper := true
	canonical := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
			break
		}
		upper = c == '-'
	}
	if canonical {
		return name
	}
	upper = true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		buf = append(buf, c)
		upper = c == '-'
	}
	if k, ok := p.common[string(buf)]; ok {
		return k
	}
	return string(buf)
}

// WriteField writes the line "name: value" as http.Header.Write does:
// each CR and LF in the value made a space, surrounding space trimmed.
func WriteField(w *bufio.Writer, name, value string) {
	if strings.ContainsAny(value, "\r\n") {
		value = strings.NewReplacer("\r", " ", "\n", " ").Replace(value)
	}
	_, _ = w.WriteString(name)
	_, _ = w.WriteString(": ")
	_, _ = w.WriteString(strings.Trim(value, " \t"))
	_, _ = w.WriteString("\r\n")
}

// PragmaNoCache adds "Cache-Control: no-cache" to a head that has
// "Pragma: no-cache" and no Cache-Control, as net/http's readers do.
func PragmaNoCache(h http.Header) {
	if pragma := h["Pragma"]; len(pragma) > 0 && pragma[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
}

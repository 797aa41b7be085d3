package edge

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
)

// headEnd returns the length of the request head at the start of buf,
// its blank line included: n > 0 when a complete CRLF head is there; 0
// when more bytes are needed; -1 when the head ends in a way the fast
// path does not take (a bare LF line end).
func headEnd(buf []byte) int {
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

// request is a parsed plain request head.
type request struct {
	method, target, host string
	url                  *url.URL
	header               http.Header
	contentLength        int64 // 0 when absent
	close                bool  // Connection: close
}

// parseHead parses a complete head (as found by headEnd) into req. It
// reports false when the head is not of the plain kind the fast path
// serves; net/http then serves it, or refuses it.
func (s *Server) parseHead(head []byte, req *request) bool {
	text := string(head) // every name and value below is a slice of it
	line, rest, _ := strings.Cut(text, "\r\n")
	if !parseRequestLine(line, req) {
		return false
	}
	lines := strings.Count(rest, "\r\n") - 1 // header lines; the last CRLF ends the head
	if lines < 0 {
		return false
	}
	h := make(http.Header, lines)
	vals := make([]string, lines)
	var keyBuf [64]byte
	hosts, lengths := 0, 0
	for i := 0; i < lines; i++ {
		line, rest, _ = strings.Cut(rest, "\r\n")
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !validName(line[:colon]) {
			return false
		}
		value := trimOWS(line[colon+1:])
		if !validValue(value) {
			return false
		}
		key := s.canonicalKey(line[:colon], keyBuf[:0])
		switch key {
		case "Host":
			if hosts++; hosts > 1 || !validHost(value) {
				return false
			}
			req.host = value
			continue
		case "Content-Length":
			n, ok := parseLength(value)
			if lengths++; lengths > 1 || !ok {
				return false
			}
			req.contentLength = n
		case "Transfer-Encoding", "Expect", "Upgrade", "Te", "Http2-Settings":
			return false
		case "Connection":
			if hasToken(value, "upgrade") {
				return false
			}
			req.close = req.close || hasToken(value, "close")
		}
		if prior, ok := h[key]; ok {
			h[key] = append(prior, value)
			continue
		}
		vals[i] = value
		h[key] = vals[i : i+1 : i+1]
	}
	if hosts != 1 {
		return false
	}
	if pragma, ok := h["Pragma"]; ok && len(pragma) > 0 && pragma[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	req.header = h
	return true
}

// parseRequestLine takes "METHOD /target HTTP/1.1".
func parseRequestLine(line string, req *request) bool {
	method, rest, ok := strings.Cut(line, " ")
	if !ok || !validName(method) || method == "CONNECT" {
		return false
	}
	target, proto, ok := strings.Cut(rest, " ")
	if !ok || proto != "HTTP/1.1" || len(target) == 0 || target[0] != '/' {
		return false
	}
	u, ok := parseTarget(target)
	if !ok {
		return false
	}
	req.method, req.target, req.url = method, target, u
	return true
}

// parseTarget returns the URL of an origin-form target as
// url.ParseRequestURI would: the path as is when it needs no unescaping
// and escapes back to itself, otherwise through url.ParseRequestURI.
func parseTarget(target string) (*url.URL, bool) {
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return nil, false
		}
	}
	path, query, hasQuery := strings.Cut(target, "?")
	plain := true
	for i := 0; i < len(path) && plain; i++ {
		plain = pathByte[path[i]]
	}
	if !plain {
		u, err := url.ParseRequestURI(target)
		return u, err == nil
	}
	u := &url.URL{Path: path, RawQuery: query}
	if hasQuery && query == "" && strings.Count(target, "?") == 1 {
		u.ForceQuery = true
	}
	return u, true
}

// pathByte marks the bytes a path may hold that url's path escaping leaves
// as they are: letters, digits, "-._~" and "$&+,/:;=@".
var pathByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

// tokenByte marks the bytes of an RFC 9110 token (method and field names).
var tokenByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func validName(s string) bool {
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

// validValue accepts field values as net/textproto does: no control bytes
// but horizontal tab.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost accepts the Host values the fast path needs: names, IPv4 and
// bracketed IPv6 addresses with an optional port. Others go to net/http.
func validHost(s string) bool {
	for i := 0; i < len(s); i++ {
		if !hostByte[s[i]] {
			return false
		}
	}
	return true
}

// hostByte marks the bytes validHost takes.
var hostByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~:[]" {
		t[c] = true
	}
	return t
}()

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// parseLength parses a Content-Length value: digits only, at most 18.
func parseLength(s string) (int64, bool) {
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

// hasToken reports whether the comma-separated list v holds token,
// compared case-insensitively.
func hasToken(v, token string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(trimOWS(t), token) {
			return true
		}
	}
	return false
}

// canonicalKey returns name in canonical form (textproto's), without
// allocating when name is already canonical or a common header.
func (s *Server) canonicalKey(name string, buf []byte) string {
	canonical := true
	upper := true
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
	if k, ok := s.common[string(buf)]; ok {
		return k
	}
	return string(buf)
}

// commonHeaders are interned when a client sends them in another case.
func commonHeaders() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control", "Connection",
		"Content-Length", "Content-Type", "Cookie", "Host", "Origin", "Pragma", "Referer", "User-Agent",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id", "X-Real-Ip",
		"Openai-Organization", "Openai-Project", "X-Stainless-Lang", "X-Stainless-Package-Version",
		"X-Stainless-Os", "X-Stainless-Arch", "X-Stainless-Runtime", "X-Stainless-Runtime-Version",
		"X-Stainless-Retry-Count", "X-Stainless-Timeout", "X-Stainless-Async", "Traceparent", "Tracestate",
	} {
		m[k] = k
	}
	return m
}

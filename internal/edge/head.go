package edge

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/tollgate/tollgate/internal/h1"
)

// request is a parsed plain request head.
type request struct {
	method, target, host string
	url                  *url.URL
	header               http.Header
	contentLength        int64 // 0 when absent
	close                bool  // Connection: close
}

// parseHead parses a complete head (as found by h1.HeadEnd) into req. It
// reports false when the head is not of the plain kind the fast path
// serves; net/http then serves it, or refuses it.
func (s *Server) parseHead(head []byte, req *request) bool {
	text := string(head) // every name and value below is a slice of it
	line, rest, _ := strings.Cut(text, "\r\n")
	if !parseRequestLine(line, req) {
		return false
	}
	h, ok := s.fields.Fields(rest)
	if !ok {
		return false
	}
	for _, k := range [...]string{"Transfer-Encoding", "Expect", "Upgrade", "Te", "Http2-Settings"} {
		if _, ok := h[k]; ok {
			return false
		}
	}
	host := h["Host"]
	if len(host) != 1 || !validHost(host[0]) {
		return false
	}
	req.host = host[0]
	delete(h, "Host")
	if cl, ok := h["Content-Length"]; ok {
		n, ok := h1.ParseLength(cl[0])
		if len(cl) != 1 || !ok {
			return false
		}
		req.contentLength = n
	}
	for _, v := range h["Connection"] {
		if h1.HasToken(v, "upgrade") {
			return false
		}
		req.close = req.close || h1.HasToken(v, "close")
	}
	h1.PragmaNoCache(h)
	req.header = h
	return true
}

// parseRequestLine takes "METHOD /target HTTP/1.1".
func parseRequestLine(line string, req *request) bool {
	method, rest, ok := strings.Cut(line, " ")
	if !ok || !h1.ValidName(method) || method == "CONNECT" {
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
var pathByte = h1.ByteSet("-._~$&+,/:;=@")

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
var hostByte = h1.ByteSet("-._~:[]")

package proxy

import (
	"context"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/internal/h1"
)

// hop reports whether k is a hop-by-hop header, removed in both
// directions (RFC 9110 7.6.1) as ReverseProxy removes it.
func hop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te",
		"Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// outgoing builds the upstream request of x from the incoming r, for the
// direct exchange and for ReverseProxy (whose Rewrite puts it in place of
// its own): the upstream's URL, and the incoming header less hop-by-hop
// headers (and those the Connection header names), Forwarded,
// Authorization and stripped cookies, plus forwarding, identity and
// upstream headers. Identity headers are set after the hop-by-hop ones
// are left out, so a client's "Connection: X-User-ID" cannot remove them.
func (p *Proxy) outgoing(ctx context.Context, x *exchange, r *http.Request) *http.Request {
	rt := x.rt
	in := r.Header
	h := make(http.Header, len(in)+12)
	listed := connectionNames(in["Connection"])
	for k, vv := range in {
		switch {
		case hop(k) || slices.Contains(listed, k):
		case k == "Authorization" || k == "Forwarded" || k == "X-Forwarded-For" || k == "X-Forwarded-Host" ||
			k == "X-Forwarded-Proto":
		default:
			h[k] = vv
		}
	}
	if anyToken(in["Te"], "trailers") {
		h["Te"] = []string{"trailers"}
	}
	if anyToken(in["Connection"], "upgrade") && len(in["Upgrade"]) > 0 {
		// A protocol upgrade (websocket) keeps its two hop-by-hop
		// headers, as ReverseProxy keeps them.
		h["Connection"] = []string{"Upgrade"}
		h["Upgrade"] = in["Upgrade"][:1]
	}
	if _, ok := in["User-Agent"]; !ok {
		h["User-Agent"] = []string{""}
	}
	if len(p.hdr.cookies) > 0 && len(h["Cookie"]) > 0 {
		h["Cookie"] = append([]string(nil), h["Cookie"]...)
		stripCookies(h, p.hdr.cookies)
	}
	if pr := x.call.Principal; pr != nil && pr.ViaSession && p.opts.SessionPage != nil && pageLoad(r) {
		// The page gets the session's CSRF token, which can be added
		// only to a plain or gzip-encoded page: ask for no other.
		delete(h, "Accept-Encoding")
		if anyToken(in["Accept-Encoding"], "gzip") {
			h["Accept-Encoding"] = []string{"gzip"}
		}
	}
	setXForwarded(h, r, p.fromTrustedProxy(r))
	if rt.gradio != nil {
		h["X-Forwarded-Prefix"] = []string{gradioForwardedPrefix(rt)}
	}
	x.reqIDValue = p.hdr.set(h, x.call.Principal, x.call.RequestID)
	if x.internalToken != "" {
		h[p.hdr.internalToken] = []string{x.internalToken}
	}
	for _, hv := range rt.upHeaders {
		h[hv.name] = hv.value
	}
	out := r.WithContext(ctx) // a shallow copy
	out.URL, out.Header, out.Host, out.RequestURI, out.Close = p.outgoingURL(r, rt, x.up), h, "", "", false
	if r.ContentLength == 0 {
		out.Body = nil
	}
	return out
}

// outgoingURL is the upstream URL: ProxyRequest.SetURL's join of the
// target and the request, then the route's strip_prefix, and the query
// cleaned as ReverseProxy cleans it.
func (p *Proxy) outgoingURL(r *http.Request, rt *route, up *backend) *url.URL {
	target := up.url
	u := *r.URL
	u.Scheme, u.Host = target.Scheme, target.Host
	u.RawQuery = cleanQueryParams(u.RawQuery)
	u.Path, u.RawPath = joinURLPath(target, &u)
	switch {
	case target.RawQuery == "":
	case u.RawQuery == "":
		u.RawQuery = target.RawQuery
	default:
		u.RawQuery = target.RawQuery + "&" + u.RawQuery
	}
	if rt.stripPrefix && rt.prefix {
		prefix := strings.TrimSuffix(rt.path, "/")
		rest := strings.TrimPrefix(r.URL.Path, prefix)
		u.Path = strings.TrimSuffix(target.Path, "/") + rest
		u.RawPath = ""
		// An escaped slash stays escaped (ComfyUI's /userdata/{file}
		// takes "workflows%2Fx.json" as one segment).
		if raw := r.URL.EscapedPath(); raw != r.URL.Path {
			if restRaw, ok := strings.CutPrefix(raw, prefix); ok {
				u.RawPath = strings.TrimSuffix(target.EscapedPath(), "/") + restRaw
			}
		}
	}
	return &u
}

// connectionNames returns the header names a Connection header lists,
// canonical; nil when it lists none.
func connectionNames(conn []string) []string {
	var names []string
	for _, v := range conn {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if t = textproto.TrimString(t); t != "" {
				names = append(names, textproto.CanonicalMIMEHeaderKey(t))
			}
		}
	}
	return names
}

// anyToken reports whether one of the comma-separated values vs holds
// token, compared case-insensitively.
func anyToken(vs []string, token string) bool {
	for _, v := range vs {
		if h1.HasToken(v, token) {
			return true
		}
	}
	return false
}

// joinURLPath joins the target's path and the request's as
// httputil's SetURL does.
func joinURLPath(a, b *url.URL) (path, rawpath string) {
	if a.RawPath == "" && b.RawPath == "" {
		return singleJoiningSlash(a.Path, b.Path), ""
	}
	apath, bpath := a.EscapedPath(), b.EscapedPath()
	aslash, bslash := strings.HasSuffix(apath, "/"), strings.HasPrefix(bpath, "/")
	switch {
	case aslash && bslash:
		return a.Path + b.Path[1:], apath + bpath[1:]
	case !aslash && !bslash:
		return a.Path + "/" + b.Path, apath + "/" + bpath
	}
	return a.Path + b.Path, apath + bpath
}

func singleJoiningSlash(a, b string) string {
	aslash, bslash := strings.HasSuffix(a, "/"), strings.HasPrefix(b, "/")
	switch {
	case aslash && bslash:
		return a + b[1:]
	case !aslash && !bslash:
		return a + "/" + b
	}
	return a + b
}

// cleanQueryParams re-encodes a query holding a semicolon or a bad
// escape, as ReverseProxy does, so the upstream cannot read it otherwise
// than the gateway did.
func cleanQueryParams(s string) string {
	reencode := func(s string) string {
		v, _ := url.ParseQuery(s)
		return v.Encode()
	}
	for i := 0; i < len(s); {
		switch s[i] {
		case ';':
			return reencode(s)
		case '%':
			if i+2 >= len(s) || !ishex(s[i+1]) || !ishex(s[i+2]) {
				return reencode(s)
			}
			i += 3
		default:
			i++
		}
	}
	return s
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// setXForwarded sets X-Forwarded-For, -Host and -Proto as
// ProxyRequest.SetXForwarded does, with one allocation, and keeps the
// incoming X-Forwarded-For chain only from a trusted proxy.
func setXForwarded(h http.Header, in *http.Request, trusted bool) {
	vals := make([]string, 3)
	vals[0] = remoteHost(in)
	if trusted {
		if prior := in.Header["X-Forwarded-For"]; len(prior) > 0 {
			vals[0] = strings.Join(prior, ", ") + ", " + vals[0]
		}
	}
	vals[1] = in.Host
	vals[2] = "http"
	if in.TLS != nil {
		vals[2] = "https"
	}
	h["X-Forwarded-For"] = vals[0:1:1]
	h["X-Forwarded-Host"] = vals[1:2:2]
	h["X-Forwarded-Proto"] = vals[2:3:3]
}

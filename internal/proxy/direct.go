package proxy

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/internal/h1"
)

// The direct exchange forwards a request of an http route to a plain-HTTP
// upstream without httputil.ReverseProxy: the upstream request is built
// from the incoming one in a single pass (hop-by-hop and reserved headers
// left out, identity and forwarding headers added), carried by the
// transport's direct path, and the response is copied back with its
// hop-by-hop headers left out. It does what ReverseProxy with this
// package's Rewrite, ModifyResponse and ErrorHandler does for such a
// request — TestDirectMatchesReverseProxy compares the two on what the
// upstream receives and what the client gets — at a fraction of the
// allocations. OpenAI routes, upgrades, HTTPS upstreams, Expect,
// trailers and bodies the transport would not carry directly still go
// through ReverseProxy.

// directOK reports whether r can take the direct exchange on rt.
func (p *Proxy) directOK(r *http.Request, rt *route, up *upstream) bool {
	if p.own == nil || rt.openai || up.url.Scheme != "http" || !plainExchange(r) {
		return false
	}
	return r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 ||
		(r.ContentLength > 0 && r.ContentLength <= maxDirectBody)
}

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

// forwardDirect serves x through the direct exchange; x.deadline is the
// route timeout.
func (p *Proxy) forwardDirect(x *exchange, r *http.Request, rt *route, pl *pool) {
	up := x.up
	out := p.outgoing(x, r, rt, up)
	res, err := p.own.roundTrip(out, x)
	if err != nil {
		p.upstreamFailed(x, out, pl, up, err)
		return
	}
	if err := p.onResponse(x, res, rt, pl, up); err != nil {
		res.Body.Close()
		p.upstreamFailed(x, out, pl, up, err)
		return
	}
	dst := x.Header()
	listed := connectionNames(res.Header["Connection"])
	for k, vv := range res.Header {
		if hop(k) || slices.Contains(listed, k) {
			continue
		}
		if prior, ok := dst[k]; ok {
			dst[k] = append(prior, vv...)
		} else {
			dst[k] = vv
		}
	}
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		dst["Trailer"] = append(dst["Trailer"], strings.Join(keys, ", "))
	}
	x.WriteHeader(res.StatusCode)
	if err := p.copyBody(x, res); err != nil {
		res.Body.Close()
		panic(http.ErrAbortHandler) // as ReverseProxy does: the client sees the response cut short
	}
	res.Body.Close()
	if len(res.Trailer) > 0 {
		// Trailers the answer did not announce go as net/http's
		// TrailerPrefix keys, as ReverseProxy sends them.
		unannounced := len(res.Trailer) != announced
		_ = x.FlushError()
		for k, vv := range res.Trailer {
			if unannounced {
				k = http.TrailerPrefix + k
			}
			dst[k] = append(dst[k], vv...)
		}
	}
}

// copyBody copies the response body to the client, flushing after each
// write for event streams and bodies of unknown length.
func (p *Proxy) copyBody(x *exchange, res *http.Response) error {
	if res.Body == http.NoBody {
		return nil
	}
	flush := res.ContentLength == -1
	if !flush {
		if ct := res.Header["Content-Type"]; len(ct) > 0 && strings.Contains(ct[0], "event-stream") {
			base, _, _ := mime.ParseMediaType(ct[0])
			flush = base == "text/event-stream"
		}
	}
	buf := p.buffers.Get()
	defer p.buffers.Put(buf)
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			if _, err := x.Write(buf[:n]); err != nil {
				return err
			}
			if flush {
				if err := x.FlushError(); err != nil {
					return err
				}
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			if !errors.Is(rerr, context.Canceled) {
				p.log.Warn("upstream body failed", "route", x.rt.name, "request_id", x.call.RequestID, "err", rerr.Error())
			}
			return rerr
		}
	}
}

// outgoing builds the upstream request from r as ReverseProxy with
// Rewrite would: the same URL, and the incoming header less hop-by-hop
// headers (and those the Connection header names), Forwarded,
// Authorization and stripped cookies, plus forwarding, identity and
// upstream headers.
func (p *Proxy) outgoing(x *exchange, r *http.Request, rt *route, up *upstream) *http.Request {
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
	if _, ok := in["User-Agent"]; !ok {
		h["User-Agent"] = []string{""}
	}
	if len(p.hdr.cookies) > 0 && len(h["Cookie"]) > 0 {
		h["Cookie"] = append([]string(nil), h["Cookie"]...)
		stripCookies(h, p.hdr.cookies)
	}
	setXForwarded(h, r, p.fromTrustedProxy(r))
	x.reqIDValue = p.hdr.set(h, x.call.Principal, x.call.RequestID)
	if x.internalToken != "" {
		h[p.hdr.internalToken] = []string{x.internalToken}
	}
	for _, hv := range rt.upHeaders {
		h[hv.name] = hv.value
	}
	out := r.WithContext(r.Context()) // a shallow copy
	out.URL, out.Header, out.Host, out.RequestURI, out.Close = p.outgoingURL(r, rt, up), h, "", "", false
	if r.ContentLength == 0 {
		out.Body = nil
	}
	return out
}

// outgoingURL is the upstream URL: ProxyRequest.SetURL's join of the
// target and the request, then the route's strip_prefix, and the query
// cleaned as ReverseProxy cleans it.
func (p *Proxy) outgoingURL(r *http.Request, rt *route, up *upstream) *url.URL {
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
		rest := strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(rt.path, "/"))
		u.Path = strings.TrimSuffix(target.Path, "/") + rest
		u.RawPath = ""
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

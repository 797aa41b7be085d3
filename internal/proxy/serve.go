package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tollgate/tollgate/internal/policy"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// ServeHTTP serves one request on a configured route: strip reserved
// headers, route, authenticate, authorize, read the body when needed,
// check rules, admit, forward, then release admissions with the outcome.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.ServeEntry(w, r, nil) }

// ServeEntry serves r as ServeHTTP does, with what the gate in front of
// the data plane decided about it before authentication (nil for
// nothing), which the admissions get in the Call.
func (p *Proxy) ServeEntry(w http.ResponseWriter, r *http.Request, e *tollgate.Entry) {
	start := p.now()
	reqID, newID := "", false
	if p.fromTrustedProxy(r) {
		if v := r.Header.Get(p.hdr.requestID); validRequestID(v) {
			reqID = v
		}
	}
	if reqID == "" {
		reqID, newID = p.ids.next(start), true
	}
	p.hdr.strip(r.Header)

	x := &exchange{w: w, p: p, clientCt: r.Context()}
	x.call = tollgate.Call{
		RequestID: reqID, NewID: newID, Start: start, ClientIP: p.clientIP(r),
		Method: r.Method, Path: r.URL.Path, Entry: e,
	}
	p.metrics.inFlight.Inc()
	defer x.finish()
	p.serve(x, r)
}

// serve routes, authenticates and authorizes, then hands to serveRoute.
func (p *Proxy) serve(x *exchange, r *http.Request) {
	if p.draining.Load() {
		p.refuse(x, r, errDraining)
		return
	}
	if hasDotSegment(r.URL.Path) {
		// "/public/../private" must not match a public prefix and then
		// be normalized by the upstream into a private path.
		p.refuse(x, r, tollgate.Errorf(tollgate.EInvalid, "the path must not contain . or .. segments"))
		return
	}
	rt := p.routes.lookup(r.URL.Path)
	if rt == nil {
		p.refuse(x, r, tollgate.Errorf(tollgate.ENotFound, "no route for %s", r.URL.Path))
		return
	}
	x.rt = rt
	x.call.Route = rt.name
	if !rt.allowsMethod(r.Method) {
		x.result = tollgate.ResultRejected
		writeMethodNotAllowed(x, rt.methods)
		return
	}
	if rt.refusesBody(r) {
		p.refuse(x, r, tollgate.Errorf(tollgate.EInvalid, "a %s request must not carry a body on this route", r.Method))
		return
	}
	if !rt.public {
		pr, err := p.opts.Auth.Authenticate(r.Context(), r)
		if errors.Is(err, tollgate.ErrNoSession) {
			p.refuseNoSession(x, r)
			return
		}
		if err != nil {
			p.refuse(x, r, err)
			return
		}
		if pr == nil {
			p.refuse(x, r, tollgate.Errorf(tollgate.EUnauthorized, "missing credentials"))
			return
		}
		x.call.Principal = pr
		if !rt.permits(pr) {
			p.refuse(x, r, tollgate.Errorf(tollgate.EForbidden, "the token lacks a scope or role this route requires"))
			return
		}
	}
	if err := p.serveRoute(x, r, rt); err != nil {
		p.refuse(x, r, err)
	}
}

// serveRoute reads what the route needs, checks it, admits and forwards.
// A returned error is rendered as a refusal.
func (p *Proxy) serveRoute(x *exchange, r *http.Request, rt *route) error {
	if r.ContentLength > rt.maxBody {
		return tooLarge(rt.maxBody)
	}
	if rt.gradio != nil {
		if err := rt.gradio.inbound(x, r, rt); err != nil {
			return err
		}
	}
	if rt.native != nil {
		if handled, err := p.serveNative(x, r, rt); handled || err != nil {
			return err
		}
	}
	var oa *openaiRequest
	kind := kindOther
	if rt.openai {
		kind = openaiKindOf(r)
		if kind == kindModels {
			if p.serveModels(x, r, rt) {
				x.result = tollgate.ResultOK
				return nil
			}
		}
	}
	if kind.hasBody() || rt.policy.NeedsBody() || rt.measure {
		body, err := readBody(r, rt.maxBody)
		if err != nil {
			return err
		}
		x.call.Body = body
		x.bytesIn = int64(len(body))
	} else if r.Body != nil && r.Body != http.NoBody {
		x.bytesIn = max(r.ContentLength, 0)
		if r.ContentLength < 0 {
			r.Body = &limitedBody{rc: r.Body, left: rt.maxBody, x: x}
		}
	}
	x.call.BytesIn = x.bytesIn
	if kind.hasBody() {
		var err error
		if oa, err = parseOpenAI(x.call.Body, rt); err != nil {
			return err
		}
		x.call.Model = oa.Model
		x.call.MaxOutputTokens = oa.maxOutputTokens()
	}
	if rt.policy != nil {
		if err := rt.policy.Check(policy.Input{Principal: x.call.Principal, Request: r, Body: x.call.Body}); err != nil {
			return err
		}
	}
	pl, ok := rt.selectPool(x.call.Principal, x.call.Model)
	if !ok {
		if rt.models != nil && x.call.Model == "" {
			return tollgate.Errorf(tollgate.EInvalid, "this route needs a model; one of %v", rt.modelNames)
		}
		return tollgate.Errorf(tollgate.ENotFound, "no upstream serves this request")
	}
	if oa != nil {
		body := x.call.Body
		if oa.needsUsageInjection() {
			var err error
			if body, err = injectIncludeUsage(body); err != nil {
				return err
			}
			x.usage = &usageMode{suppress: true}
		} else {
			x.usage = &usageMode{}
		}
		setBody(r, body)
		r.Header.Del("Accept-Encoding") // usage is read from the response
	} else if x.call.Body != nil {
		setBody(r, x.call.Body)
	}
	if rt.internalToken && p.opts.InternalToken != nil && x.call.Principal != nil {
		tok, err := p.opts.InternalToken(r.Context(), x.call.Principal, rt.name)
		if err != nil {
			return fmt.Errorf("mint internal token: %w", err)
		}
		x.internalToken = tok
	}
	for _, a := range p.opts.Admissions {
		if x.gradio != nil && !x.gradio.metered || rt.native != nil {
			break // on a gradio route only calls are metered; a comfyui route's prompts are jobs
		}
		rel, err := a.Admit(r.Context(), &x.call)
		if err != nil {
			return err // rendered and recorded by refuse
		}
		if rel != nil {
			x.releases = append(x.releases, rel)
		}
	}
	p.forward(x, r, pl)
	return nil
}

// refusal used by the 413 paths.
func tooLarge(limit int64) error {
	return tollgate.Errorf(tollgate.ETooLarge, "request body is larger than this route's limit of %d bytes", limit)
}

// hasDotSegment reports whether a (decoded) path has a "." or ".."
// segment.
func hasDotSegment(path string) bool {
	for i := strings.Index(path, "/."); i >= 0; {
		rest := path[i+2:]
		if rest == "" || rest[0] == '/' || rest == "." || strings.HasPrefix(rest, "./") {
			return true
		}
		j := strings.Index(rest, "/.")
		if j < 0 {
			return false
		}
		i = i + 2 + j
	}
	return false
}

// refuseNoSession answers a request that carried no credential (a browser
// whose session ended): a page load goes to the login page, which brings
// it back; anything else gets 401. Neither counts toward an IP ban, so a
// page of many assets loaded after a logout does not ban its reader.
func (p *Proxy) refuseNoSession(x *exchange, r *http.Request) {
	if x.call.Entry != nil {
		x.call.Entry.NoCredential = true
	}
	if !pageLoad(r) {
		p.refuse(x, r, tollgate.ErrNoSession)
		return
	}
	x.result = tollgate.ResultRejected
	x.Header().Set("Cache-Control", "no-store")
	http.Redirect(x, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}

// pageLoad reports whether r is a browser's navigation to a page: a GET
// or HEAD for a document (Sec-Fetch-Mode: navigate, or HTML first in
// Accept where the browser sends no Sec-Fetch-Mode).
func pageLoad(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if mode := r.Header.Get("Sec-Fetch-Mode"); mode != "" {
		return mode == "navigate"
	}
	return strings.HasPrefix(r.Header.Get("Accept"), "text/html")
}

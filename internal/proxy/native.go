package proxy

import (
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Native serves the endpoints of a route that the gateway answers itself
// (a comfyui route's prompts, queue, history, files and websocket), after
// the proxy has authenticated the caller and checked the route's scopes
// and roles. Requests it does not answer are forwarded as on any route,
// with the identity headers; they are not metered (a comfyui route's
// prompts are metered as jobs).
type Native interface {
	// Serve answers r and reports true, or leaves (or rewrites) it for
	// forwarding and reports false. rel is the path under the route,
	// starting with "/". A returned error is rendered as a refusal.
	Serve(w http.ResponseWriter, r *http.Request, p *tollgate.Principal, rel string) (handled bool, err error)
}

// serveNative lets the route's Native answer r; it reports whether it
// did.
func (p *Proxy) serveNative(x *exchange, r *http.Request, rt *route) (bool, error) {
	if x.call.Principal == nil {
		return false, tollgate.Errorf(tollgate.EUnauthorized, "this route needs an authenticated caller")
	}
	rel := "/" + strings.TrimPrefix(r.URL.Path, rt.path)
	handled, err := rt.native.Serve(x, r, x.call.Principal, rel)
	if handled && err == nil {
		x.result = tollgate.ResultOK
		if x.status >= 400 {
			x.result = tollgate.ResultRejected
		}
	}
	return handled, err
}

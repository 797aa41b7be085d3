package auth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// RequireSession serves next to a request with a live session (its
// principal in the context), CSRF-checked when it changes state. Without
// one, a page load is redirected to /login and anything else gets 401. A
// cookie that names no session is a guess: it gets 401 (an HTML page
// linking to /login for a GET), which counts toward the IP ban, and the
// cookie is cleared.
func (s *Service) RequireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, rt, err := s.session(r.Context(), r)
		if err == nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			err = s.renewSession(w, r, rt)
		}
		if errors.Is(err, errBadSession) {
			s.clearSessionCookie(w, r)
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				httpErrorPage(w, http.StatusUnauthorized, "Your session cookie is not valid; please log in again.")
				return
			}
		}
		if err != nil {
			if tollgate.ErrorCode(err) == tollgate.EUnauthorized && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			httpx.WriteError(w, r, s.opts.Logger, err)
			return
		}
		if err := s.checkCSRF(r, p, true); err != nil {
			httpx.WriteError(w, r, s.opts.Logger, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// CookieRoutes returns the authenticator of the data plane: a bearer token
// or API key on every route, and on routes that opt in (cookie_auth) the
// session cookie too, CSRF-checked when the call changes state. Routes are
// matched as the data plane matches them: exact paths first, then the
// longest prefix.
func (s *Service) CookieRoutes(routes []config.Route) tollgate.Authenticator {
	a := &cookieRoutes{s: s, exact: map[string]bool{}}
	for _, rt := range routes {
		if strings.HasSuffix(rt.Path, "/") {
			a.prefixes = append(a.prefixes, cookiePrefix{rt.Path, rt.CookieAuthOn()})
		} else {
			a.exact[rt.Path] = rt.CookieAuthOn()
		}
	}
	sort.SliceStable(a.prefixes, func(i, j int) bool { return len(a.prefixes[i].path) > len(a.prefixes[j].path) })
	return a
}

type cookieRoutes struct {
	s        *Service
	exact    map[string]bool
	prefixes []cookiePrefix
}

type cookiePrefix struct {
	path   string
	cookie bool
}

// cookieAllowed reports whether the route serving path opts in to cookies.
func (a *cookieRoutes) cookieAllowed(path string) bool {
	if on, ok := a.exact[path]; ok {
		return on
	}
	for _, p := range a.prefixes {
		if strings.HasPrefix(path, p.path) {
			return p.cookie
		}
	}
	return false
}

// Authenticate verifies a bearer credential when the request carries one
// or its route takes no cookie. On a cookie route without one it checks
// the session cookie; no cookie, or a cookie whose session ended, is
// tollgate.ErrNoSession: a browser that must log in again, not a guess. A
// cookie that names no session is refused like a wrong bearer token.
func (a *cookieRoutes) Authenticate(ctx context.Context, r *http.Request) (*tollgate.Principal, error) {
	if r.Header.Get("Authorization") != "" || !a.cookieAllowed(r.URL.Path) {
		return a.s.Authenticate(ctx, r)
	}
	if !a.s.HasSessionCookie(r) {
		return nil, tollgate.ErrNoSession
	}
	p, err := a.s.Session(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := a.s.CheckCSRF(r, p); err != nil {
		return nil, err
	}
	return p, nil
}

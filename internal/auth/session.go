package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// A browser session is a refresh-token family: the session cookie holds
// the family's refresh token (HttpOnly, SameSite=Lax, Secure on HTTPS).
// Every request it authenticates is checked against the store at most a
// second old and against the in-memory denylist, so revoking the family
// or the user, or disabling the user, ends the session on every replica
// within a second.

// sessionTTL bounds how long a session lookup is trusted without the
// store.
const sessionTTL = time.Second

// csrfHeader and csrfField carry the CSRF token of a cookie request.
const (
	csrfHeader = "X-CSRF-Token"
	csrfField  = "csrf_token"
)

// sessionCache remembers session lookups for sessionTTL.
type sessionCache struct {
	mu    sync.Mutex
	items map[string]sessionEntry
}

type sessionEntry struct {
	rt   *tollgate.RefreshToken
	user *tollgate.User
	at   time.Time
}

func (c *sessionCache) get(key string, now time.Time) (sessionEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok || now.Sub(e.at) >= sessionTTL {
		return sessionEntry{}, false
	}
	return e, true
}

func (c *sessionCache) put(key string, e sessionEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil || len(c.items) > 10_000 {
		c.items = map[string]sessionEntry{}
	}
	c.items[key] = e
}

func (c *sessionCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.items, key)
}

// errNoSession is the refusal of a request without a live session: no
// cookie, or the cookie of a session that ended.
var errNoSession = tollgate.ErrNoSession

// errBadSession refuses a session cookie that names no session tollgate
// issued (malformed, or unknown to the store): a guess, or a cookie forged
// by hand. Unlike errNoSession it counts toward the IP ban like a wrong
// bearer token, so session cookies cannot be guessed without one.
var errBadSession = tollgate.Errorf(tollgate.EUnauthorized, "the session cookie is not valid; log in again")

// HasSessionCookie reports whether r carries a session cookie at all.
func (s *Service) HasSessionCookie(r *http.Request) bool {
	c, err := r.Cookie(s.opts.Config.Login.CookieName)
	return err == nil && c.Value != ""
}

// Session returns the principal of r's session cookie; EUnauthorized when
// there is none or it ended. It does not check CSRF (CheckCSRF does).
func (s *Service) Session(ctx context.Context, r *http.Request) (*tollgate.Principal, error) {
	p, _, err := s.session(ctx, r)
	return p, err
}

// session is Session, also returning the cookie's refresh token.
func (s *Service) session(ctx context.Context, r *http.Request) (*tollgate.Principal, *tollgate.RefreshToken, error) {
	c, err := r.Cookie(s.opts.Config.Login.CookieName)
	if err != nil {
		return nil, nil, errNoSession
	}
	hash, ok := token.HashRefreshToken(c.Value)
	if !ok {
		return nil, nil, errBadSession
	}
	now := s.opts.Now()
	key := string(hash)
	e, ok := s.sessions.get(key, now)
	if !ok {
		// Tokens stay in the store at least until their family's
		// absolute expiry and the cookie expires with its token, so a
		// browser never holds one the store forgot: this is a guess.
		rt, err := s.opts.Store.RefreshTokens().RefreshToken(ctx, hash)
		if tollgate.ErrorCode(err) == tollgate.ENotFound {
			return nil, nil, errBadSession
		} else if err != nil {
			return nil, nil, err
		}
		user, err := s.opts.Store.Users().User(ctx, rt.UserID)
		if tollgate.ErrorCode(err) == tollgate.ENotFound {
			return nil, nil, errNoSession
		} else if err != nil {
			return nil, nil, err
		}
		e = sessionEntry{rt: rt, user: user, at: now}
		s.sessions.put(key, e)
	}
	rt, user := e.rt, e.user
	// A token renewed a moment ago still serves the requests that were
	// on their way with it.
	renewedLongAgo := !rt.UsedAt.IsZero() && now.Sub(rt.UsedAt) >= renewGrace
	if rt.Revoked || renewedLongAgo || !now.Before(rt.ExpiresAt) || !now.Before(rt.FamilyExpiresAt) || s.blocked(user) {
		return nil, nil, errNoSession
	}
	p := s.principalOf(user, "")
	p.SessionID, p.IssuedAt, p.ViaSession = rt.FamilyID, rt.IssuedAt, true
	if err := s.opts.Verifier.Denylist().Check(p); err != nil {
		return nil, nil, errNoSession
	}
	return p, rt, nil
}

// CSRFToken is the CSRF token of a session: a digest of its family id,
// which only tollgate, the store and the session's own holder know.
func CSRFToken(sessionID string) string {
	sum := sha256.Sum256([]byte("tollgate csrf token\x00" + sessionID))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// stateChanging reports whether a request may change state: every method
// but GET, HEAD and OPTIONS, and websocket upgrades.
func stateChanging(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return isUpgrade(r)
	}
	return true
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// CheckCSRF refuses (403) a state-changing request of session p that lacks
// the session's CSRF token in the X-CSRF-Token header or does not come
// from the gateway's own origin. A websocket upgrade cannot carry a
// header, so its Origin alone decides. Safe requests pass. The body is
// never read, so a proxied request reaches its upstream whole.
func (s *Service) CheckCSRF(r *http.Request, p *tollgate.Principal) error {
	return s.checkCSRF(r, p, false)
}

// checkCSRF is CheckCSRF; with form, the token may also come as the form
// field csrf_token (the gateway's own HTML forms).
func (s *Service) checkCSRF(r *http.Request, p *tollgate.Principal, form bool) error {
	if !stateChanging(r) {
		return nil
	}
	if !s.sameOrigin(r) {
		return tollgate.Errorf(tollgate.EForbidden, "cross-origin request refused")
	}
	if isUpgrade(r) && r.Method == http.MethodGet {
		return nil
	}
	got := r.Header.Get(csrfHeader)
	if got == "" && form && isForm(r) {
		r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
		if err := r.ParseForm(); err == nil {
			got = r.PostForm.Get(csrfField)
		}
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(CSRFToken(p.SessionID))) != 1 {
		return tollgate.Errorf(tollgate.EForbidden, "missing or wrong CSRF token")
	}
	return nil
}

func isForm(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data")
}

// sameOrigin reports whether r's Origin (or, without one, its Referer) is
// the gateway's public origin or the origin the request was sent to. A
// request with neither is refused: every browser sends one of them on a
// state-changing request.
func (s *Service) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		ref, err := url.Parse(r.Header.Get("Referer"))
		if err != nil || ref.Scheme == "" || ref.Host == "" {
			return false
		}
		origin = ref.Scheme + "://" + ref.Host
	}
	if strings.EqualFold(origin, s.publicOrigin) {
		return true
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return r.Host != "" && strings.EqualFold(origin, scheme+"://"+r.Host)
}

// originOf is the scheme://host[:port] of a URL.
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// secureCookies reports whether cookies set on r get the Secure flag.
func (s *Service) secureCookies(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(s.opts.Config.PublicURL, "https://")
}

// startSession begins a refresh-token family for user and sets its cookie,
// which expires with the family's token (tokens.refresh_idle_ttl, at most
// tokens.refresh_ttl); page loads renew it (renewSession).
func (s *Service) startSession(w http.ResponseWriter, r *http.Request, user *tollgate.User) error {
	// A revocation of the user's tokens marks the next whole second (token
	// times are in seconds); a session begun before that mark would be
	// born revoked, so it begins at the mark.
	if d := user.TokensValidAfter.Sub(s.opts.Now()); d > 0 && d <= 2*time.Second {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return tollgate.Errorf(tollgate.EUnavailable, "login canceled")
		}
	}
	raw, rt, err := s.opts.Refresher.Start(r.Context(), user.ID, s.opts.Config.Scopes(user.Role, user.Plan))
	if err != nil {
		return err
	}
	s.setSessionCookie(w, r, raw, rt)
	return nil
}

func (s *Service) setSessionCookie(w http.ResponseWriter, r *http.Request, raw string, rt *tollgate.RefreshToken) {
	http.SetCookie(w, &http.Cookie{
		Name: s.opts.Config.Login.CookieName, Value: raw, Path: "/",
		Expires: rt.ExpiresAt, HttpOnly: true, Secure: s.secureCookies(r), SameSite: http.SameSiteLaxMode,
	})
}

// endSession revokes r's session family, on every replica, and clears the
// cookie.
func (s *Service) endSession(w http.ResponseWriter, r *http.Request) error {
	if c, err := r.Cookie(s.opts.Config.Login.CookieName); err == nil {
		if hash, ok := token.HashRefreshToken(c.Value); ok {
			s.sessions.drop(string(hash))
		}
		family, err := s.opts.Refresher.Revoke(r.Context(), c.Value)
		if err != nil {
			return err
		}
		if family != "" {
			if err := s.revokeSession(r.Context(), family); err != nil {
				return err
			}
		}
	}
	s.clearSessionCookie(w, r)
	return nil
}

// clearSessionCookie tells the browser to drop its session cookie.
func (s *Service) clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: s.opts.Config.Login.CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secureCookies(r), SameSite: http.SameSiteLaxMode,
	})
}

// StartSessionFor begins a new session of the user userID on w, replacing
// r's session cookie: what a page does after ending every session of its
// user but wants to stay logged in itself. A disabled or absent user gets
// EUnauthorized.
func (s *Service) StartSessionFor(w http.ResponseWriter, r *http.Request, userID string) error {
	user, err := s.opts.Store.Users().User(r.Context(), userID)
	if tollgate.ErrorCode(err) == tollgate.ENotFound {
		return errNoSession
	} else if err != nil {
		return err
	}
	if s.blocked(user) {
		return errNoSession
	}
	if c, err := r.Cookie(s.opts.Config.Login.CookieName); err == nil {
		if hash, ok := token.HashRefreshToken(c.Value); ok {
			s.sessions.drop(string(hash))
		}
	}
	return s.startSession(w, r, user)
}

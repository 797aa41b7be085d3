package auth

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// A session in use stays alive: a page load (RequireSession, GET) made
// when its refresh token has lived half of its idle time rotates the
// token and sets the new one in the cookie. The old token keeps serving
// for renewGrace, for the requests already on their way with it; within
// this replica, concurrent page loads with the old token share one
// rotation. Rotation never extends the family's absolute expiry
// (tokens.refresh_ttl).

// renewGrace is how long a rotated session token is still accepted.
const renewGrace = 30 * time.Second

// renewals merges the rotations of one token within a replica.
type renewals struct {
	mu    sync.Mutex
	items map[string]*renewal // by old token hash
}

type renewal struct {
	done chan struct{}
	raw  string
	rt   *tollgate.RefreshToken
	err  error
	at   time.Time
}

// due reports whether rt should be rotated now.
func renewDue(rt *tollgate.RefreshToken, now time.Time) bool {
	return rt.UsedAt.IsZero() && now.Sub(rt.IssuedAt) >= rt.ExpiresAt.Sub(rt.IssuedAt)/2
}

// renewSession rotates the session token of r when it is due, setting the
// new cookie on w. It returns an error only when the session ended (the
// token was rotated elsewhere at the same time, which revokes the family).
func (s *Service) renewSession(w http.ResponseWriter, r *http.Request, rt *tollgate.RefreshToken) error {
	now := s.opts.Now()
	c, err := r.Cookie(s.opts.Config.Login.CookieName)
	if err != nil {
		return nil
	}
	hash, _ := token.HashRefreshToken(c.Value)
	key := string(hash)
	s.renew.mu.Lock()
	if s.renew.items == nil {
		s.renew.items = map[string]*renewal{}
	}
	for k, old := range s.renew.items {
		if !old.at.IsZero() && now.Sub(old.at) > renewGrace {
			delete(s.renew.items, k)
		}
	}
	rn, running := s.renew.items[key]
	if !running {
		if !renewDue(rt, now) {
			s.renew.mu.Unlock()
			return nil
		}
		rn = &renewal{done: make(chan struct{})}
		s.renew.items[key] = rn
	}
	s.renew.mu.Unlock()
	if !running {
		// The cached token may be a second old; another replica may have
		// rotated it since, and rotating it again would end the session.
		if fresh, err := s.opts.Store.RefreshTokens().RefreshToken(r.Context(), hash); err != nil || !renewDue(fresh, now) {
			s.renew.mu.Lock()
			delete(s.renew.items, key)
			s.renew.mu.Unlock()
			close(rn.done)
			return nil
		}
		rn.raw, rn.rt, rn.err = s.opts.Refresher.Rotate(r.Context(), c.Value)
		s.sessions.drop(key)
		s.renew.mu.Lock()
		rn.at = s.opts.Now()
		s.renew.mu.Unlock()
		close(rn.done)
	}
	select {
	case <-rn.done:
	case <-r.Context().Done():
		return nil
	}
	switch {
	case rn.err == nil && rn.raw != "":
		s.setSessionCookie(w, r, rn.raw, rn.rt)
	case errors.Is(rn.err, tollgate.ErrRefreshReused):
		if rn.rt != nil {
			if err := s.revokeSession(r.Context(), rn.rt.FamilyID); err != nil {
				s.opts.Logger.WarnContext(r.Context(), "revoke replayed session", "err", err)
			}
		}
		return errNoSession
	case rn.err != nil:
		s.opts.Logger.WarnContext(r.Context(), "renew session", "err", rn.err)
	}
	return nil
}

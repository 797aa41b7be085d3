package auth

import (
	"context"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// revoke answers POST /oauth/revoke (RFC 7009): an access token (by its
// jti) or a refresh token (its whole family). Holding a token is the right
// to revoke it. The answer is 200 also for unknown or expired tokens, so
// the endpoint tells nothing about them (§2.2).
func (s *Service) revoke(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, oauthError{status: 400, Code: "invalid_request", Description: "want an application/x-www-form-urlencoded body"})
		return nil
	}
	raw := r.PostForm.Get("token")
	if raw == "" {
		writeOAuthError(w, oauthError{status: 400, Code: "invalid_request", Description: "token is required"})
		return nil
	}
	var err error
	if token.IsRefreshToken(raw) {
		var family string
		if family, err = s.opts.Refresher.Revoke(r.Context(), raw); err == nil && family != "" {
			err = s.revokeSession(r.Context(), family)
		}
	} else {
		err = s.revokeAccess(r.Context(), raw)
	}
	if err != nil && tollgate.ErrorCode(err) == tollgate.EInternal {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return nil
}

// revokeAccess denies an access token until its expiry, here at once, in
// the store for restarts and new replicas, and on every other replica
// through Publish.
func (s *Service) revokeAccess(ctx context.Context, raw string) error {
	p, err := s.opts.Verifier.Verify(ctx, raw)
	if err != nil {
		return nil // invalid, expired or already revoked: nothing to do
	}
	return s.RevokeToken(ctx, p.Issuer, p.JTI, p.Expires)
}

// RevokeToken denies one access token by (issuer, jti) until exp.
func (s *Service) RevokeToken(ctx context.Context, iss, jti string, exp time.Time) error {
	if jti == "" {
		return tollgate.Errorf(tollgate.EInvalid, "the token has no jti")
	}
	s.opts.Verifier.Denylist().RevokeToken(iss, jti, exp)
	if err := s.opts.Store.Revocations().Revoke(ctx, &tollgate.Revocation{Issuer: iss, JTI: jti, ExpiresAt: exp, CreatedAt: s.opts.Now()}); err != nil {
		return err
	}
	s.publish(ctx, tollgate.Event{Kind: tollgate.EventRevokeToken, Issuer: iss, JTI: jti, Until: exp})
	return nil
}

// revokeSession denies every access token issued with a refresh-token
// family (their sid), for as long as the longest of them can live.
func (s *Service) revokeSession(ctx context.Context, family string) error {
	until := s.opts.Now().Add(s.opts.Issuer.TTL() + time.Minute)
	return s.RevokeToken(ctx, s.opts.Issuer.Issuer(), token.SessionJTI(family), until)
}

// RevokeUser invalidates every token of a user issued until now and all of
// the user's refresh-token families.
func (s *Service) RevokeUser(ctx context.Context, userID string) error {
	// Tokens carry iat in whole seconds; a mark a second ahead also
	// covers tokens issued within the current second.
	now := s.opts.Now().Truncate(time.Second).Add(time.Second)
	if _, err := s.opts.Store.Users().UpdateUser(ctx, userID, tollgate.UserUpdate{TokensValidAfter: &now}); err != nil {
		return err
	}
	if err := s.opts.Store.RefreshTokens().RevokeUserRefreshTokens(ctx, userID); err != nil {
		return err
	}
	s.opts.Verifier.Denylist().RevokeUserTokens(userID, now)
	s.publish(ctx, tollgate.Event{Kind: tollgate.EventRevokeUser, UserID: userID, At: now})
	return nil
}

// SetDisabled disables or enables a user; disabling also revokes every
// token the user holds.
func (s *Service) SetDisabled(ctx context.Context, userID string, disabled bool) error {
	if _, err := s.opts.Store.Users().UpdateUser(ctx, userID, tollgate.UserUpdate{Disabled: &disabled}); err != nil {
		return err
	}
	dl := s.opts.Verifier.Denylist()
	if disabled {
		dl.DisableUser(userID)
		s.publish(ctx, tollgate.Event{Kind: tollgate.EventDisableUser, UserID: userID})
		return s.RevokeUser(ctx, userID)
	}
	dl.EnableUser(userID)
	s.publish(ctx, tollgate.Event{Kind: tollgate.EventEnableUser, UserID: userID})
	return nil
}

// Apply applies a revocation event received from the bus (from any
// replica, this one included) to the in-memory denylist.
func (s *Service) Apply(ev tollgate.Event) {
	dl := s.opts.Verifier.Denylist()
	switch ev.Kind {
	case tollgate.EventRevokeToken:
		dl.RevokeToken(ev.Issuer, ev.JTI, ev.Until)
	case tollgate.EventRevokeUser:
		dl.RevokeUserTokens(ev.UserID, ev.At)
	case tollgate.EventDisableUser:
		dl.DisableUser(ev.UserID)
	case tollgate.EventEnableUser:
		dl.EnableUser(ev.UserID)
	}
}

// publish fans ev out; a bus failure is logged, not returned: the change
// is in the store, and every replica reloads the store within a second.
func (s *Service) publish(ctx context.Context, ev tollgate.Event) {
	if s.opts.Publish == nil {
		return
	}
	if err := s.opts.Publish(ctx, ev); err != nil {
		s.opts.Logger.WarnContext(ctx, "publish revocation", "kind", ev.Kind, "err", err)
	}
}

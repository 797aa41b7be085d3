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
	ev := &tollgate.AuditEvent{Action: tollgate.AuditRevoke}
	if token.IsRefreshToken(raw) {
		var family string
		if family, err = s.opts.Refresher.Revoke(r.Context(), raw); err == nil && family != "" {
			ev.Target = "family " + family
			err = s.revokeSession(r.Context(), family)
		}
	} else {
		err = s.revokeAccess(r.Context(), raw, ev)
	}
	if ev.Target == "" && err == nil {
		ev.Reason = "unknown, invalid or expired token: nothing to revoke"
	}
	s.record(r, ev, err)
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
func (s *Service) revokeAccess(ctx context.Context, raw string, ev *tollgate.AuditEvent) error {
	p, err := s.opts.Verifier.Verify(ctx, raw)
	if err != nil {
		return nil // invalid, expired or already revoked: nothing to do
	}
	ev.Actor, ev.Target = p.UserID, "jti "+p.JTI
	return s.RevokeToken(ctx, p.Issuer, p.JTI, p.Expires)
}

// Stores are the stores a revocation writes: the gateway's store, or the
// transaction of an audited change (tollgate.AuditTx).
type Stores interface {
	Users() tollgate.UserStore
	RefreshTokens() tollgate.RefreshTokenStore
	Revocations() tollgate.RevocationStore
}

// Commit is what a stored revocation still has to do once its
// transaction commits: apply it here and on every other replica.
type Commit func(ctx context.Context)

// RevokeToken denies one access token by (issuer, jti) until exp.
func (s *Service) RevokeToken(ctx context.Context, iss, jti string, exp time.Time) error {
	if jti != "" {
		s.opts.Verifier.Denylist().RevokeToken(iss, jti, exp) // here at once
	}
	commit, err := s.RevokeTokenIn(ctx, s.opts.Store, iss, jti, exp)
	if err != nil {
		return err
	}
	commit(ctx)
	return nil
}

// RevokeTokenIn stores the denial of (issuer, jti) until exp in st; the
// returned Commit applies it once st's transaction commits.
func (s *Service) RevokeTokenIn(ctx context.Context, st Stores, iss, jti string, exp time.Time) (Commit, error) {
	if jti == "" {
		return nil, tollgate.Errorf(tollgate.EInvalid, "the token has no jti")
	}
	if err := st.Revocations().Revoke(ctx, &tollgate.Revocation{Issuer: iss, JTI: jti, ExpiresAt: exp, CreatedAt: s.opts.Now()}); err != nil {
		return nil, err
	}
	return func(ctx context.Context) {
		s.opts.Verifier.Denylist().RevokeToken(iss, jti, exp)
		s.publish(ctx, tollgate.Event{Kind: tollgate.EventRevokeToken, Issuer: iss, JTI: jti, Until: exp})
	}, nil
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
	commit, err := s.RevokeUserIn(ctx, s.opts.Store, userID)
	if err != nil {
		return err
	}
	commit(ctx)
	return nil
}

// RevokeUserIn is RevokeUser with the change stored in st; the returned
// Commit applies it once st's transaction commits.
func (s *Service) RevokeUserIn(ctx context.Context, st Stores, userID string) (Commit, error) {
	// Tokens carry iat in whole seconds; a mark a second ahead also
	// covers tokens issued within the current second.
	now := s.opts.Now().Truncate(time.Second).Add(time.Second)
	if _, err := st.Users().UpdateUser(ctx, userID, tollgate.UserUpdate{TokensValidAfter: &now}); err != nil {
		return nil, err
	}
	if err := st.RefreshTokens().RevokeUserRefreshTokens(ctx, userID); err != nil {
		return nil, err
	}
	return func(ctx context.Context) {
		s.opts.Verifier.Denylist().RevokeUserTokens(userID, now)
		s.publish(ctx, tollgate.Event{Kind: tollgate.EventRevokeUser, UserID: userID, At: now})
	}, nil
}

// SetDisabled disables or enables a user; disabling also revokes every
// token the user holds.
func (s *Service) SetDisabled(ctx context.Context, userID string, disabled bool) error {
	commit, err := s.SetDisabledIn(ctx, s.opts.Store, userID, disabled)
	if err != nil {
		return err
	}
	commit(ctx)
	return nil
}

// SetDisabledIn is SetDisabled with the change stored in st; the returned
// Commit applies it once st's transaction commits.
func (s *Service) SetDisabledIn(ctx context.Context, st Stores, userID string, disabled bool) (Commit, error) {
	if _, err := st.Users().UpdateUser(ctx, userID, tollgate.UserUpdate{Disabled: &disabled}); err != nil {
		return nil, err
	}
	dl := s.opts.Verifier.Denylist()
	if !disabled {
		return func(ctx context.Context) {
			dl.EnableUser(userID)
			s.publish(ctx, tollgate.Event{Kind: tollgate.EventEnableUser, UserID: userID})
		}, nil
	}
	revoke, err := s.RevokeUserIn(ctx, st, userID)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) {
		dl.DisableUser(userID)
		s.publish(ctx, tollgate.Event{Kind: tollgate.EventDisableUser, UserID: userID})
		revoke(ctx)
	}, nil
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
	case tollgate.EventDisableTenant:
		dl.DisableTenant(ev.TenantID)
	case tollgate.EventEnableTenant:
		dl.EnableTenant(ev.TenantID)
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

// RevokeSessionIn ends one refresh-token family (a session) in st: its
// refresh tokens and every access token issued with it are refused. The
// returned Commit applies it on every replica once st's transaction
// commits. ENotFound when no token of the family exists.
func (s *Service) RevokeSessionIn(ctx context.Context, st Stores, familyID string) (Commit, error) {
	if err := st.RefreshTokens().RevokeRefreshFamily(ctx, familyID); err != nil {
		return nil, err
	}
	until := s.opts.Now().Add(s.opts.Issuer.TTL() + time.Minute)
	return s.RevokeTokenIn(ctx, st, s.opts.Issuer.Issuer(), token.SessionJTI(familyID), until)
}

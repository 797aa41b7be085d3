package auth

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// maxFormBytes bounds the bodies of the identity endpoints.
const maxFormBytes = 16 << 10

// tokenResponse is the body of a successful login or token request
// (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// login answers POST /auth/login {"username","password"}. Every attempt
// is audited with its outcome, the reason of a failure and the client IP
// (never the password).
func (s *Service) login(w http.ResponseWriter, r *http.Request) error {
	ev := &tollgate.AuditEvent{Action: tollgate.AuditLogin}
	user, err := s.loginUser(r, ev)
	if err == nil {
		var resp *tokenResponse
		if resp, err = s.issue(r, user, true, ""); err == nil {
			s.record(r, ev, nil)
			httpx.WriteJSON(w, http.StatusOK, resp)
			return nil
		}
	}
	s.record(r, ev, err)
	return err
}

// loginUser checks a login request and returns its user, filling in ev
// who tried and why it failed.
func (s *Service) loginUser(r *http.Request, ev *tollgate.AuditEvent) (*tollgate.User, error) {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxFormBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		ev.Reason = "malformed request body"
		return nil, tollgate.Errorf(tollgate.EInvalid, `want a JSON body {"username":"…","password":"…"}`)
	}
	if utf8.ValidString(req.Username) {
		ev.ActorName = req.Username
	}
	if req.Username == "" || req.Password == "" || !utf8.ValidString(req.Username) || len(req.Username) > 256 || len(req.Password) > 1024 {
		ev.Reason = "username or password missing or too long"
		return nil, tollgate.Errorf(tollgate.EInvalid, "username and password are required")
	}
	return s.passwordLogin(r, req.Username, req.Password, ev)
}

// passwordLogin checks a username and password behind the login guard's
// back-off, recording the outcome with it, and fills in ev who tried and
// why it failed. Both /auth/login and the /login form use it.
func (s *Service) passwordLogin(r *http.Request, username, password string, ev *tollgate.AuditEvent) (*tollgate.User, error) {
	if utf8.ValidString(username) {
		ev.ActorName = username
	}
	ctx, ip := r.Context(), s.opts.ClientIP(r)
	if g := s.opts.Guard; g != nil {
		if err := g.Check(ctx, username, ip); err != nil {
			ev.Reason = "backing off after failed logins of this account or address"
			return nil, err
		}
	}
	user, reason, err := s.checkPassword(r, username, password)
	if user != nil {
		ev.Actor = user.ID
	}
	if err != nil {
		ev.Reason = reason
		if g := s.opts.Guard; g != nil && tollgate.ErrorCode(err) == tollgate.EUnauthorized {
			if err := g.Failed(ctx, username, ip); err != nil {
				s.opts.Logger.WarnContext(ctx, "record failed login", "err", err)
			}
		}
		return nil, err
	}
	if g := s.opts.Guard; g != nil {
		if err := g.Succeeded(ctx, username, ip); err != nil {
			s.opts.Logger.WarnContext(ctx, "record login", "err", err)
		}
	}
	return user, nil
}

// checkPassword answers the same way, in the same time, for an unknown
// user, a wrong password and a disabled account; reason tells them apart
// for the audit trail, and the user is returned when the name is known.
func (s *Service) checkPassword(r *http.Request, name, password string) (_ *tollgate.User, reason string, _ error) {
	user, err := s.opts.Store.Users().UserByName(r.Context(), name)
	hash := ""
	switch tollgate.ErrorCode(err) {
	case "":
		hash = user.PasswordHash
	case tollgate.ENotFound:
	default:
		return nil, "store: " + err.Error(), err
	}
	ok, err := s.opts.Hasher.Verify(r.Context(), hash, password)
	if err != nil {
		return user, "password check: " + tollgate.ErrorMessage(err), err
	}
	invalid := tollgate.Errorf(tollgate.EUnauthorized, "invalid username or password")
	switch {
	case user == nil:
		return nil, "unknown user", invalid
	case hash == "":
		return user, "the user has no password", invalid
	case !ok:
		return user, "wrong password", invalid
	case user.Disabled:
		return user, "user disabled", invalid
	case s.blocked(user):
		return user, "tenant disabled", invalid
	}
	return user, "", nil
}

// issue signs an access token for user. With withRefresh it starts a new
// refresh-token family first; the token carries the family as its sid
// (or sid, when given: the family of a rotated refresh token), so that
// revoking the family revokes it too.
func (s *Service) issue(r *http.Request, user *tollgate.User, withRefresh bool, sid string) (*tokenResponse, error) {
	cfg := s.opts.Config
	scopes := cfg.Scopes(user.Role, user.Plan)
	var refresh string
	if withRefresh {
		raw, rt, err := s.opts.Refresher.Start(r.Context(), user.ID, scopes)
		if err != nil {
			return nil, err
		}
		refresh, sid = raw, rt.FamilyID
	}
	at, exp, err := s.opts.Issuer.Issue(r.Context(), token.AccessClaims{
		Subject: user.ID, TenantID: user.TenantID, Role: user.Role, Scopes: scopes, Plan: cfg.PlanName(user.Plan),
		SessionID: sid,
	})
	if err != nil {
		return nil, err
	}
	return &tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(exp.Sub(s.opts.Now()).Seconds()),
		Scope: strings.Join(scopes, " "), RefreshToken: refresh}, nil
}

// oauthError is an RFC 6749 §5.2 error response.
type oauthError struct {
	status      int
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func writeOAuthError(w http.ResponseWriter, e oauthError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="tollgate"`)
	}
	httpx.WriteJSON(w, e.status, e)
}

// oauthToken answers POST /oauth/token (form-encoded, RFC 6749).
func (s *Service) oauthToken(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		writeOAuthError(w, oauthError{status: 400, Code: "invalid_request", Description: "want an application/x-www-form-urlencoded body"})
		return nil
	}
	var (
		user         *tollgate.User
		refresh, sid string
		err          error
		ev           = &tollgate.AuditEvent{}
	)
	switch r.PostForm.Get("grant_type") {
	case "refresh_token":
		ev.Action = tollgate.AuditRefresh
		user, refresh, sid, err = s.rotate(r, ev)
	case "client_credentials":
		ev.Action = tollgate.AuditClientCredentials
		user, err = s.clientCredentials(r, ev)
	case "":
		writeOAuthError(w, oauthError{status: 400, Code: "invalid_request", Description: "grant_type is required"})
		return nil
	default:
		writeOAuthError(w, oauthError{status: 400, Code: "unsupported_grant_type", Description: "supported: refresh_token, client_credentials"})
		return nil
	}
	if err != nil {
		e, ok := err.(oauthError)
		if !ok && tollgate.ErrorCode(err) == tollgate.EInternal {
			s.record(r, ev, err)
			return err
		}
		if !ok {
			e = oauthError{status: 400, Code: "invalid_grant", Description: tollgate.ErrorMessage(err)}
		}
		s.record(r, ev, e)
		writeOAuthError(w, e)
		return nil
	}
	resp, err := s.issue(r, user, false, sid)
	s.record(r, ev, err)
	if err != nil {
		return err
	}
	resp.RefreshToken = refresh
	httpx.WriteJSON(w, http.StatusOK, resp)
	return nil
}

func (e oauthError) Error() string { return e.Code + ": " + e.Description }

// rotate exchanges a refresh token for a new one of the same family and
// returns the family. A replayed token revokes the family (the refresher
// does that) and every access token issued with it.
func (s *Service) rotate(r *http.Request, ev *tollgate.AuditEvent) (user *tollgate.User, next, family string, err error) {
	raw := r.PostForm.Get("refresh_token")
	if raw == "" {
		return nil, "", "", oauthError{status: 400, Code: "invalid_request", Description: "refresh_token is required"}
	}
	next, rt, err := s.opts.Refresher.Rotate(r.Context(), raw)
	if rt != nil {
		ev.Actor, ev.Target = rt.UserID, rt.FamilyID
	}
	if errors.Is(err, tollgate.ErrRefreshReused) && rt != nil {
		ev.Reason = "a rotated refresh token was replayed; its family and its access tokens are revoked"
		if rerr := s.revokeSession(r.Context(), rt.FamilyID); rerr != nil {
			return nil, "", "", errors.Join(err, rerr)
		}
	}
	if err != nil {
		return nil, "", "", err
	}
	if user, err = s.activeUser(r, rt.UserID); err != nil {
		return nil, "", "", err
	}
	return user, next, rt.FamilyID, nil
}

// clientCredentials authenticates with an API key as client_id/secret,
// in the form or in HTTP Basic (RFC 6749 §2.3.1).
func (s *Service) clientCredentials(r *http.Request, ev *tollgate.AuditEvent) (*tollgate.User, error) {
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if secret == "" {
		return nil, oauthError{status: 401, Code: "invalid_client", Description: "client_secret (an API key) is required"}
	}
	keyID, _, _ := token.ParseAPIKey(secret)
	ev.Target = keyID
	user, err := s.keys.check(r.Context(), secret)
	if user != nil {
		ev.Actor, ev.ActorName = user.ID, user.Name
	}
	switch {
	case err != nil:
		ev.Reason = "API key: " + tollgate.ErrorMessage(err)
	case s.blocked(user):
		ev.Reason = "tenant disabled"
	case id != "" && id != keyID:
		ev.Reason = "client_id is not the API key's ID"
	default:
		return user, nil
	}
	return nil, oauthError{status: 401, Code: "invalid_client", Description: "invalid client credentials"}
}

// activeUser loads a user that may still get tokens.
func (s *Service) activeUser(r *http.Request, id string) (*tollgate.User, error) {
	user, err := s.opts.Store.Users().User(r.Context(), id)
	if tollgate.ErrorCode(err) == tollgate.ENotFound || (err == nil && s.blocked(user)) {
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "user unknown or disabled")
	}
	return user, err
}

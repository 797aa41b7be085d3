package auth

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// Single sign-on: OpenID Connect's authorization code flow with PKCE
// (S256), state and nonce, against a trusted issuer with login: true. The
// ID token is verified as the issuer's access tokens are (its keys, its
// algorithms, audience = client_id) and its claims mapped the same way;
// the user is then kept in the store (created at the first login, named
// "<issuer host>/<sub>", with no password), so that disabling or revoking
// them works as for any user, and a browser session starts.

// ssoCookie carries a login in flight from /login/sso/{n} to the
// callback: its state, nonce, PKCE verifier and where to go after.
const ssoCookie = "tollgate_sso"

// ssoFlowTTL bounds a login in flight.
const ssoFlowTTL = 10 * time.Minute

type ssoIssuer struct {
	name     string
	cfg      config.TrustedIssuer
	verifier *token.Verifier // ID tokens: audience client_id

	mu     sync.Mutex
	meta   *oidcMeta
	metaAt time.Time
}

// oidcMeta is what the issuer's discovery document tells the flow.
type oidcMeta struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
}

// ssoFlow is the content of the ssoCookie.
type ssoFlow struct {
	Issuer   int    `json:"i"`
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"next"`
}

func (s *Service) newSSO() error {
	cfg := s.opts.Config
	s.sso = make([]*ssoIssuer, len(cfg.TrustedIssuers))
	for i, ti := range cfg.TrustedIssuers {
		if !ti.Login {
			continue
		}
		v, err := token.NewVerifier(token.VerifierOptions{
			Trusted: []token.TrustedIssuer{{
				Issuer: ti.Issuer, JWKSURL: ti.JWKSURL, Audience: ti.ClientID, Algorithms: ti.Algorithms,
				DefaultPlan: ti.DefaultPlan,
				Claims:      token.ClaimsMapping{TenantID: ti.Claims["tenant_id"], Role: ti.Claims["role"], Scope: ti.Claims["scope"], Plan: ti.Claims["plan"]},
			}},
			JWKS:   token.JWKSOptions{HTTPClient: s.opts.HTTPClient, MaxStale: ti.MaxStale, RefetchInterval: ti.RefreshInterval},
			Leeway: cfg.Tokens.Leeway, CacheSize: -1, Logger: s.opts.Logger, Now: s.opts.Now,
		})
		if err != nil {
			return fmt.Errorf("trusted_issuers[%d] login: %w", i, err)
		}
		s.sso[i] = &ssoIssuer{name: ti.LoginName, cfg: ti, verifier: v}
	}
	return nil
}

// discover returns the issuer's endpoints, fetched at most every five
// minutes.
func (s *Service) discoverSSO(ctx context.Context, iss *ssoIssuer) (*oidcMeta, error) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	if iss.meta != nil && s.opts.Now().Sub(iss.metaAt) < 5*time.Minute {
		return iss.meta, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(iss.cfg.Issuer, "/")+"/.well-known/openid-configuration", nil)
	if err != nil {
		return nil, fmt.Errorf("discovery request: %w", err)
	}
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch discovery: status %d", resp.StatusCode)
	}
	var m oidcMeta
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&m); err != nil {
		return nil, fmt.Errorf("decode discovery: %w", err)
	}
	if m.Issuer != iss.cfg.Issuer {
		return nil, fmt.Errorf("discovery names issuer %q, want %q", m.Issuer, iss.cfg.Issuer)
	}
	for _, e := range []string{m.AuthorizationEndpoint, m.TokenEndpoint} {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("discovery endpoint %q is not an http(s) URL", e)
		}
	}
	iss.meta, iss.metaAt = &m, s.opts.Now()
	return &m, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// pkceChallenge is the S256 code challenge of verifier (RFC 7636).
func pkceChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (s *Service) redirectURI() string { return s.opts.Config.PublicURL + "/login/sso/callback" }

// ssoStart answers GET /login/sso/{n}: it remembers a new flow in a cookie
// and sends the browser to the issuer.
func (s *Service) ssoStart(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n >= len(s.sso) || s.sso[n] == nil {
		httpErrorPage(w, http.StatusNotFound, "No such sign-in provider.")
		return
	}
	iss := s.sso[n]
	meta, err := s.discoverSSO(r.Context(), iss)
	if err != nil {
		s.opts.Logger.WarnContext(r.Context(), "single sign-on discovery", "issuer", iss.cfg.Issuer, "err", err)
		httpErrorPage(w, http.StatusBadGateway, "The sign-in provider does not answer; please try again later.")
		return
	}
	flow := ssoFlow{Issuer: n, State: randomString(24), Nonce: randomString(24), Verifier: randomString(32), Next: safeNext(r.URL.Query().Get("next"))}
	b, _ := json.Marshal(flow)
	http.SetCookie(w, &http.Cookie{
		Name: ssoCookie, Value: base64.RawURLEncoding.EncodeToString(b), Path: "/login/sso/",
		MaxAge: int(ssoFlowTTL / time.Second), HttpOnly: true, Secure: s.secureCookies(r), SameSite: http.SameSiteLaxMode,
	})
	q := url.Values{
		"response_type": {"code"}, "client_id": {iss.cfg.ClientID}, "redirect_uri": {s.redirectURI()},
		"scope": {"openid profile email"}, "state": {flow.State}, "nonce": {flow.Nonce},
		"code_challenge": {pkceChallenge(flow.Verifier)}, "code_challenge_method": {"S256"},
	}
	sep := "?"
	if strings.Contains(meta.AuthorizationEndpoint, "?") {
		sep = "&"
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, meta.AuthorizationEndpoint+sep+q.Encode(), http.StatusFound)
}

// ssoCallback answers GET /login/sso/callback?code=&state=: it checks the
// state against the flow's cookie, exchanges the code with the PKCE
// verifier, verifies the ID token and its nonce, and starts a session.
func (s *Service) ssoCallback(w http.ResponseWriter, r *http.Request) {
	flow, ok := s.readFlow(r)
	// The flow is used once, whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: "", Path: "/login/sso/", MaxAge: -1, HttpOnly: true, Secure: s.secureCookies(r), SameSite: http.SameSiteLaxMode})
	q := r.URL.Query()
	if !ok {
		httpErrorPage(w, http.StatusBadRequest, "This sign-in expired or was started elsewhere; please start again.")
		return
	}
	if q.Get("state") == "" || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(flow.State)) != 1 {
		httpErrorPage(w, http.StatusForbidden, "The sign-in answer does not belong to this browser's sign-in (state mismatch).")
		return
	}
	if e := q.Get("error"); e != "" {
		httpErrorPage(w, http.StatusUnauthorized, "The sign-in provider refused: "+e)
		return
	}
	iss := s.sso[flow.Issuer]
	user, err := s.ssoExchange(r.Context(), iss, q.Get("code"), flow)
	if err == nil {
		err = s.startSession(w, r, user)
	}
	if err != nil {
		if tollgate.ErrorCode(err) == tollgate.EInternal {
			s.opts.Logger.WarnContext(r.Context(), "single sign-on", "issuer", iss.cfg.Issuer, "err", err)
			httpErrorPage(w, http.StatusBadGateway, "Signing in failed; please try again.")
			return
		}
		httpErrorPage(w, http.StatusUnauthorized, "Signing in failed: "+tollgate.ErrorMessage(err))
		return
	}
	http.Redirect(w, r, flow.Next, http.StatusSeeOther)
}

func (s *Service) readFlow(r *http.Request) (ssoFlow, bool) {
	var f ssoFlow
	c, err := r.Cookie(ssoCookie)
	if err != nil {
		return f, false
	}
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || json.Unmarshal(b, &f) != nil {
		return f, false
	}
	if f.Issuer < 0 || f.Issuer >= len(s.sso) || s.sso[f.Issuer] == nil || f.State == "" || f.Nonce == "" || f.Verifier == "" {
		return f, false
	}
	f.Next = safeNext(f.Next)
	return f, true
}

// ssoExchange trades the code for tokens, verifies the ID token and
// returns its user, created or brought up to date.
func (s *Service) ssoExchange(ctx context.Context, iss *ssoIssuer, code string, flow ssoFlow) (*tollgate.User, error) {
	if code == "" {
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "the provider sent no code")
	}
	meta, err := s.discoverSSO(ctx, iss)
	if err != nil {
		return nil, err
	}
	form := url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {s.redirectURI()},
		"client_id": {iss.cfg.ClientID}, "code_verifier": {flow.Verifier},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, meta.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if secret := os.ExpandEnv(iss.cfg.ClientSecret); secret != "" {
		req.SetBasicAuth(url.QueryEscape(iss.cfg.ClientID), url.QueryEscape(secret))
	}
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("token exchange: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		IDToken string `json:"id_token"`
		Error   string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("token exchange: decode answer of status %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || body.IDToken == "" {
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "the provider refused the code (%s)", cleanText(body.Error))
	}
	p, err := iss.verifier.Verify(ctx, body.IDToken)
	if err != nil {
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "the ID token is invalid: %s", tollgate.ErrorMessage(err))
	}
	nonce, err := tokenNonce(body.IDToken)
	if err != nil || subtle.ConstantTimeCompare([]byte(nonce), []byte(flow.Nonce)) != 1 {
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "the ID token's nonce does not match this sign-in")
	}
	return s.ssoUser(ctx, iss, p)
}

// tokenNonce reads the nonce claim of a verified compact JWS.
func tokenNonce(raw string) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("not a compact JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("decode payload: %w", err)
	}
	var c struct {
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", fmt.Errorf("decode payload: %w", err)
	}
	return c.Nonce, nil
}

// ssoUser finds or creates the store user of an issuer's subject, with
// the tenant, role and plan its claims map to (or the issuer's defaults).
// The tenant of an existing user never changes: a login that maps to
// another one is refused.
func (s *Service) ssoUser(ctx context.Context, iss *ssoIssuer, p *tollgate.Principal) (*tollgate.User, error) {
	cfg := s.opts.Config
	host := iss.cfg.Issuer
	if u, err := url.Parse(iss.cfg.Issuer); err == nil {
		host = u.Host + strings.TrimSuffix(u.Path, "/")
	}
	name := host + "/" + p.UserID
	if len(name) > 128 {
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "the subject is too long")
	}
	tenant := cmp.Or(p.TenantID, iss.cfg.DefaultTenant)
	if s.opts.Verifier.Denylist().TenantDisabled(tenant) {
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "the tenant is disabled")
	}
	role := cmp.Or(p.Role, iss.cfg.DefaultRole)
	plan := cmp.Or(p.Plan, iss.cfg.DefaultPlan)
	if _, ok := cfg.Roles[role]; !ok {
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "the role %q is not configured here", role)
	}
	if _, ok := cfg.Plans[plan]; !ok {
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "the plan %q is not configured here", plan)
	}
	users := s.opts.Store.Users()
	u, err := users.UserByName(ctx, name)
	switch tollgate.ErrorCode(err) {
	case tollgate.ENotFound:
		if _, err := s.opts.Store.Tenants().Tenant(ctx, tenant); tollgate.ErrorCode(err) == tollgate.ENotFound {
			if err := s.opts.Store.Tenants().CreateTenant(ctx, &tollgate.Tenant{ID: tenant, Name: tenant}); err != nil && tollgate.ErrorCode(err) != tollgate.EConflict {
				return nil, fmt.Errorf("create tenant: %w", err)
			}
		} else if err != nil {
			return nil, fmt.Errorf("find tenant: %w", err)
		}
		u = &tollgate.User{Name: name, TenantID: tenant, Role: role, Plan: plan}
		if err := users.CreateUser(ctx, u); err != nil {
			return nil, fmt.Errorf("create user: %w", err)
		}
		return u, nil
	case "":
	default:
		return nil, fmt.Errorf("find user: %w", err)
	}
	switch {
	case u.PasswordHash != "":
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "a local user has this name")
	case u.Disabled:
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "the user is disabled")
	case u.TenantID != tenant:
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "the provider maps this user to another tenant than before; an admin must move them")
	}
	if u.Role != role || u.Plan != plan {
		if u, err = users.UpdateUser(ctx, u.ID, tollgate.UserUpdate{Role: &role, Plan: &plan}); err != nil {
			return nil, fmt.Errorf("update user: %w", err)
		}
	}
	return u, nil
}

// cleanText keeps a provider's error code printable and short.
func cleanText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

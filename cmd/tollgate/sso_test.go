package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// oidcProvider is a small OpenID Connect provider: discovery, JWKS, an
// /authorize that approves at once, and a /token that checks the code,
// the client and the PKCE verifier before it signs an ID token.
type oidcProvider struct {
	*httptest.Server
	t      *testing.T
	key    *rsa.PrivateKey
	claims map[string]any // added to every ID token

	mu        sync.Mutex
	codes     map[string]authRequest
	badNonce  bool // sign ID tokens with another nonce
	exchanges int
	refused   []string // why /token refused, in order
}

type authRequest struct {
	clientID, redirectURI, nonce, challenge string
}

const (
	ssoClientID     = "tollgate-web"
	ssoClientSecret = "s3cret-of-the-client"
)

func newOIDCProvider(t *testing.T, claims map[string]any) *oidcProvider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &oidcProvider{t: t, key: key, claims: claims, codes: map[string]authRequest{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": p.URL, "authorization_endpoint": p.URL + "/authorize", "token_endpoint": p.URL + "/token",
			"jwks_uri": p.URL + "/jwks", "code_challenge_methods_supported": []string{"S256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		b64 := base64.RawURLEncoding
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]any{{
			"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
			"n": b64.EncodeToString(key.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

func (p *oidcProvider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" || q.Get("client_id") != ssoClientID || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" || !strings.Contains(q.Get("scope"), "openid") {
		http.Error(w, "bad authorization request: "+r.URL.RawQuery, http.StatusBadRequest)
		return
	}
	code := rand.Text()
	p.mu.Lock()
	p.codes[code] = authRequest{clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri"), nonce: q.Get("nonce"), challenge: q.Get("code_challenge")}
	p.mu.Unlock()
	http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
}

func (p *oidcProvider) token(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exchanges++
	refuse := func(why string) {
		p.refused = append(p.refused, why)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
	}
	if err := r.ParseForm(); err != nil {
		refuse("form")
		return
	}
	f := r.PostForm
	req, ok := p.codes[f.Get("code")]
	delete(p.codes, f.Get("code")) // a code is used once
	id, secret, _ := r.BasicAuth()
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	switch {
	case !ok:
		refuse("unknown code")
	case f.Get("grant_type") != "authorization_code" || f.Get("client_id") != req.clientID || f.Get("redirect_uri") != req.redirectURI:
		refuse("client or redirect_uri")
	case id != ssoClientID || secret != ssoClientSecret:
		refuse("client secret")
	case base64.RawURLEncoding.EncodeToString(sum[:]) != req.challenge:
		refuse("pkce verifier")
	default:
		nonce := req.nonce
		if p.badNonce {
			nonce = "another-" + nonce
		}
		now := time.Now()
		c := jwt.MapClaims{"iss": p.URL, "sub": "u-1234", "aud": ssoClientID, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "nonce": nonce}
		for k, v := range p.claims {
			c[k] = v
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
		tok.Header["kid"] = "k1"
		signed, err := tok.SignedString(p.key)
		if err != nil {
			p.t.Error(err)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "opaque", "token_type": "Bearer", "id_token": signed})
	}
}

func ssoYAML(p *oidcProvider) string {
	return `trusted_issuers:
  - issuer: ` + p.URL + `
    jwks_url: ` + p.URL + `/jwks
    audience: tollgate
    login: true
    client_id: ` + ssoClientID + `
    client_secret: ${SSO_SECRET}
    login_name: Test IdP
    claims: {tenant_id: org, role: groups}
`
}

// follow sends GET target and follows redirects from host to host until an
// answer that is not one, returning it; at most 10 hops.
func (b *browser) follow(target string) (*http.Response, string) {
	b.t.Helper()
	for range 10 {
		resp, body := b.do("GET", target, nil, nil)
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || loc == "" {
			return resp, body
		}
		next, err := resp.Request.URL.Parse(loc)
		if err != nil {
			b.t.Fatal(err)
		}
		target = next.String()
	}
	b.t.Fatal("too many redirects")
	return nil, ""
}

// TestSSOLogin signs in through the test provider: authorization code
// with PKCE, state and nonce; the ID token's claims give the user their
// tenant and role, and the session works like a password one. A wrong
// state, a wrong nonce and a PKCE verifier that does not match are
// refused without a session.
func TestSSOLogin(t *testing.T) {
	idp := newOIDCProvider(t, map[string]any{"org": "acme", "groups": []string{"user"}})
	up := newUpstream(t)
	t.Setenv("SSO_SECRET", ssoClientSecret)
	g := setup(t, ssoYAML(idp)+cookieRouteYAML(up.URL))
	host := strings.TrimPrefix(idp.URL, "http://")

	t.Run("login page offers it", func(t *testing.T) {
		_, page := newBrowser(t, g.URL, nil).do("GET", "/login", nil, nil)
		if !strings.Contains(page, `href="/login/sso/0?next=%2fui%2f"`) || !strings.Contains(page, "Sign in with Test IdP") {
			t.Fatalf("login page has no sign-in link:\n%s", page)
		}
	})
	t.Run("sign in", func(t *testing.T) {
		b := newBrowser(t, g.URL, nil)
		resp, page := b.follow(g.URL + "/login/sso/0?next=/ui/")
		if resp.StatusCode != 200 || !strings.Contains(page, `<strong id="user">`+host+`/u-1234</strong>`) || !strings.Contains(page, "acme") {
			t.Fatalf("after sign-in: %d %s\n%s", resp.StatusCode, resp.Request.URL, page)
		}
		sc := b.cookie("tollgate_session")
		if sc == nil {
			t.Fatal("no session cookie")
		}
		if resp, _ := b.do("GET", "/app/x", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("cookie route after sign-in: %d", resp.StatusCode)
		}
		if h := *up.last.Load(); h.Get("X-Tenant-ID") != "acme" || h.Get("X-User-Role") != "user" {
			t.Errorf("upstream saw %v", h)
		}
		// Signing in again finds the same user.
		b2 := newBrowser(t, g.URL, nil)
		if resp, page := b2.follow(g.URL + "/login/sso/0"); resp.StatusCode != 200 || !strings.Contains(page, host+"/u-1234") {
			t.Fatalf("second sign-in: %d\n%s", resp.StatusCode, page)
		}
		out := g.mustCLI("user", "list")
		if strings.Count(out, host+"/u-1234") != 1 {
			t.Errorf("user list after two sign-ins:\n%s", out)
		}
	})
	// start begins a sign-in and returns the browser and the provider's
	// answer (the redirect back to tollgate), not yet followed.
	start := func(t *testing.T) (*browser, *url.URL) {
		t.Helper()
		b := newBrowser(t, g.URL, nil)
		resp, _ := b.do("GET", "/login/sso/0", nil, nil)
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("start: %d", resp.StatusCode)
		}
		resp, body := b.do("GET", resp.Header.Get("Location"), nil, nil)
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("authorize: %d %s", resp.StatusCode, body)
		}
		back, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || !strings.HasPrefix(back.String(), g.URL+"/login/sso/callback?") {
			t.Fatalf("provider redirected to %q", resp.Header.Get("Location"))
		}
		return b, back
	}
	noSession := func(t *testing.T, b *browser, resp *http.Response, status int) {
		t.Helper()
		if resp.StatusCode != status || b.cookie("tollgate_session") != nil {
			t.Fatalf("answer %d (want %d), session cookie %v", resp.StatusCode, status, b.cookie("tollgate_session"))
		}
		if resp, _ := b.do("GET", "/ui/", nil, nil); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("/ui/ without a session: %d", resp.StatusCode)
		}
	}
	t.Run("wrong state", func(t *testing.T) {
		b, back := start(t)
		q := back.Query()
		q.Set("state", "forged-"+q.Get("state"))
		back.RawQuery = q.Encode()
		before := idp.exchangeCount()
		resp, _ := b.do("GET", back.String(), nil, nil)
		noSession(t, b, resp, http.StatusForbidden)
		if idp.exchangeCount() != before {
			t.Error("the code was exchanged although the state did not match")
		}
	})
	t.Run("answer replayed into another browser", func(t *testing.T) {
		_, back := start(t)
		other := newBrowser(t, g.URL, nil)
		resp, _ := other.do("GET", back.String(), nil, nil)
		noSession(t, other, resp, http.StatusBadRequest)
	})
	t.Run("wrong nonce", func(t *testing.T) {
		idp.setBadNonce(true)
		defer idp.setBadNonce(false)
		b, back := start(t)
		resp, page := b.do("GET", back.String(), nil, nil)
		noSession(t, b, resp, http.StatusUnauthorized)
		if !strings.Contains(page, "nonce") {
			t.Errorf("refusal does not name the nonce:\n%s", page)
		}
	})
	t.Run("PKCE verifier mismatch", func(t *testing.T) {
		b, back := start(t)
		// Swap the verifier the flow's cookie holds for another one.
		u := mustURL(t, g.URL+"/login/sso/")
		var flow map[string]any
		for _, c := range b.c.Jar.Cookies(u) {
			if c.Name == "tollgate_sso" {
				raw, _ := base64.RawURLEncoding.DecodeString(c.Value)
				_ = json.Unmarshal(raw, &flow)
			}
		}
		if flow == nil {
			t.Fatal("no flow cookie")
		}
		flow["v"] = rand.Text() + rand.Text()
		raw, _ := json.Marshal(flow)
		b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "tollgate_sso", Value: base64.RawURLEncoding.EncodeToString(raw), Path: "/login/sso/"}})
		resp, _ := b.do("GET", back.String(), nil, nil)
		noSession(t, b, resp, http.StatusUnauthorized)
		if got := idp.lastRefusal(); got != "pkce verifier" {
			t.Errorf("provider refused for %q, want the PKCE verifier", got)
		}
	})
}

func (p *oidcProvider) exchangeCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exchanges
}

func (p *oidcProvider) setBadNonce(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.badNonce = on
}

func (p *oidcProvider) lastRefusal() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.refused) == 0 {
		return ""
	}
	return p.refused[len(p.refused)-1]
}

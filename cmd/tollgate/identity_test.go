package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// upstream is an httptest server that records what reached it.
type upstream struct {
	*httptest.Server
	hits atomic.Int64
	last atomic.Pointer[http.Header]
}

func newUpstream(t *testing.T) *upstream {
	return newUpstreamFunc(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
}

// newUpstreamFunc is newUpstream answering with h.
func newUpstreamFunc(t *testing.T, h http.HandlerFunc) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		hdr := r.Header.Clone()
		u.last.Store(&hdr)
		h(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func routeYAML(up string) string {
	return `routes:
  - name: ocr
    path: /ocr/
    type: http
    upstreams: [` + up + `]
    scopes: [infer:text]
`
}

// TestTokenVerifiesWithIndependentJOSE fetches the discovery document and
// the JWKS it names, and checks a token from /auth/login with go-jose: an
// implementation that shares no code with tollgate's.
func TestTokenVerifiesWithIndependentJOSE(t *testing.T) {
	g := setup(t, "")
	tk := g.login("admin", adminPassword)
	if tk.TokenType != "Bearer" || tk.ExpiresIn < 890 || tk.ExpiresIn > 900 || !strings.HasPrefix(tk.RefreshToken, "tgr_") {
		t.Fatalf("login answer %+v: want Bearer, ~900 s and a refresh token", tk)
	}

	_, body := g.do("GET", "/.well-known/openid-configuration", "", "")
	var disco struct {
		Issuer, JWKSURI, TokenEndpoint, RevocationEndpoint string
		Algs                                               []string `json:"access_token_signing_alg_values_supported"`
	}
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	disco.Issuer, _ = raw["issuer"].(string)
	disco.JWKSURI, _ = raw["jwks_uri"].(string)
	disco.TokenEndpoint, _ = raw["token_endpoint"].(string)
	disco.RevocationEndpoint, _ = raw["revocation_endpoint"].(string)
	if disco.Issuer != g.URL || disco.TokenEndpoint != g.URL+"/oauth/token" || disco.RevocationEndpoint != g.URL+"/oauth/revoke" {
		t.Fatalf("discovery %s", body)
	}
	resp, err := http.Get(disco.JWKSURI)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("JWKS: %v", err)
	}

	parsed, err := jwt.ParseSigned(tk.AccessToken, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("go-jose cannot parse the token: %v", err)
	}
	hdr := parsed.Headers[0]
	if hdr.ExtraHeaders["typ"] != "at+jwt" || hdr.KeyID == "" {
		t.Fatalf("header typ=%v kid=%q, want at+jwt and a kid", hdr.ExtraHeaders["typ"], hdr.KeyID)
	}
	keys := set.Key(hdr.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q is not in the JWKS", hdr.KeyID)
	}
	var claims jwt.Claims
	var extra struct {
		TenantID string `json:"tenant_id"`
		Role     string `json:"role"`
		Scope    string `json:"scope"`
		Plan     string `json:"plan"`
	}
	if err := parsed.Claims(keys[0].Key, &claims, &extra); err != nil {
		t.Fatalf("go-jose rejects the signature: %v", err)
	}
	if err := claims.Validate(jwt.Expected{Issuer: disco.Issuer, AnyAudience: jwt.Audience{"tollgate"}, Time: time.Now()}); err != nil {
		t.Fatalf("claims: %v", err)
	}
	if claims.ID == "" || claims.Subject == "" || extra.TenantID != "default" || extra.Role != "admin" || extra.Scope != "*" || extra.Plan != "free" {
		t.Fatalf("claims %+v %+v", claims, extra)
	}
}

func TestLogin(t *testing.T) {
	g := setup(t, "")
	g.mustCLI("user", "add", "alice", "--password", "alice-password", "--tenant", "acme", "--role", "user")

	t.Run("unknown user and wrong password look the same", func(t *testing.T) {
		r1, b1 := g.do("POST", "/auth/login", "", `{"username":"nobody","password":"alice-password"}`)
		r2, b2 := g.do("POST", "/auth/login", "", `{"username":"alice","password":"wrong-password"}`)
		if r1.StatusCode != 401 || r2.StatusCode != 401 || string(b1) != string(b2) {
			t.Fatalf("unknown user: %d %s; wrong password: %d %s", r1.StatusCode, b1, r2.StatusCode, b2)
		}
	})
	t.Run("bad bodies are 400", func(t *testing.T) {
		for _, body := range []string{``, `{`, `{"username":"alice"}`, `{"username":"alice","password":"x","extra":1}`, `[]`} {
			if resp, b := g.do("POST", "/auth/login", "", body); resp.StatusCode != 400 {
				t.Errorf("body %q: %d %s", body, resp.StatusCode, b)
			}
		}
	})
	t.Run("me shows the caller", func(t *testing.T) {
		tk := g.login("alice", "alice-password")
		resp, body := g.do("GET", "/v1/me", tk.AccessToken, "")
		var me map[string]any
		_ = json.Unmarshal(body, &me)
		if resp.StatusCode != 200 || me["username"] != "alice" || me["tenant_id"] != "acme" || me["role"] != "user" || me["plan"] != "free" {
			t.Fatalf("me: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("missing or garbage token is 401 with WWW-Authenticate", func(t *testing.T) {
		for _, tok := range []string{"", "garbage", "a.b.c"} {
			resp, body := g.do("GET", "/v1/me", tok, "")
			if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) || !strings.Contains(string(body), `"code":"invalid_token"`) {
				t.Errorf("token %q: %d %q %s", tok, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
			}
		}
	})
	t.Run("disabled user cannot log in", func(t *testing.T) {
		g.mustCLI("user", "add", "bob", "--password", "bob-password", "--tenant", "acme", "--role", "user")
		g.mustCLI("user", "disable", "bob")
		if resp, _ := g.do("POST", "/auth/login", "", `{"username":"bob","password":"bob-password"}`); resp.StatusCode != 401 {
			t.Fatalf("disabled user logged in: %d", resp.StatusCode)
		}
		g.mustCLI("user", "enable", "bob")
		g.login("bob", "bob-password")
	})
}

func TestRefreshRotationAndReplay(t *testing.T) {
	g := setup(t, "")
	first := g.login("admin", adminPassword)
	refresh := func(rt string) (*http.Response, tokens) {
		resp, body := g.form("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		var tk tokens
		_ = json.Unmarshal(body, &tk)
		return resp, tk
	}
	resp, second := refresh(first.RefreshToken)
	if resp.StatusCode != 200 || second.AccessToken == "" || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatalf("rotation: %d %+v", resp.StatusCode, second)
	}
	if r, _ := g.do("GET", "/v1/me", second.AccessToken, ""); r.StatusCode != 200 {
		t.Fatalf("rotated access token refused: %d", r.StatusCode)
	}
	// Replaying the first (rotated) token is theft: it fails and kills
	// the family, so the legitimate second token dies too.
	resp, replay := refresh(first.RefreshToken)
	if resp.StatusCode != 400 || replay.Error != "invalid_grant" {
		t.Fatalf("replay: %d %+v", resp.StatusCode, replay)
	}
	if resp, tk := refresh(second.RefreshToken); resp.StatusCode != 400 || tk.Error != "invalid_grant" {
		t.Fatalf("sibling after replay: %d %+v, want invalid_grant", resp.StatusCode, tk)
	}
	// The access tokens issued with the family die with it, whoever holds
	// them; another login of the same user (another family) lives on.
	for name, at := range map[string]string{"login": first.AccessToken, "rotated": second.AccessToken} {
		if r, _ := g.do("GET", "/v1/me", at, ""); r.StatusCode != 401 {
			t.Errorf("%s access token of the replayed family: %d, want 401", name, r.StatusCode)
		}
	}
	other := g.login("admin", adminPassword)
	if r, _ := g.do("GET", "/v1/me", other.AccessToken, ""); r.StatusCode != 200 {
		t.Fatalf("access token of another session after the replay: %d, want 200", r.StatusCode)
	}
	t.Run("revoking a refresh token ends its access tokens", func(t *testing.T) {
		s := g.login("admin", adminPassword)
		if resp, _ := g.form("/oauth/revoke", url.Values{"token": {s.RefreshToken}}); resp.StatusCode != 200 {
			t.Fatalf("revoke: %d", resp.StatusCode)
		}
		if r, _ := g.do("GET", "/v1/me", s.AccessToken, ""); r.StatusCode != 401 {
			t.Errorf("access token of a revoked family: %d, want 401", r.StatusCode)
		}
		if r, _ := g.do("GET", "/v1/me", other.AccessToken, ""); r.StatusCode != 200 {
			t.Errorf("another session's access token: %d, want 200", r.StatusCode)
		}
	})
	t.Run("bad requests follow RFC 6749", func(t *testing.T) {
		cases := map[string]url.Values{
			"invalid_request":        {},
			"unsupported_grant_type": {"grant_type": {"password"}},
			"invalid_grant":          {"grant_type": {"refresh_token"}, "refresh_token": {"tgr_nonsense"}},
		}
		for want, v := range cases {
			_, body := g.form("/oauth/token", v)
			if !strings.Contains(string(body), `"error":"`+want+`"`) {
				t.Errorf("%v: %s, want %s", v, body, want)
			}
		}
	})
}

func TestClientCredentialsAndAPIKeys(t *testing.T) {
	up := newUpstream(t)
	g := setup(t, routeYAML(up.URL))
	g.mustCLI("user", "add", "svc", "--password", "svc-password", "--tenant", "acme", "--role", "user")
	key := strings.TrimSpace(g.mustCLI("key", "create", "--user", "svc", "--name", "batch"))
	if !strings.HasPrefix(key, "tg_") {
		t.Fatalf("key create printed %q", key)
	}
	resp, body := g.form("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_secret": {key}})
	var tk tokens
	_ = json.Unmarshal(body, &tk)
	if resp.StatusCode != 200 || tk.AccessToken == "" || tk.RefreshToken != "" {
		t.Fatalf("client_credentials: %d %s", resp.StatusCode, body)
	}
	if r, b := g.do("GET", "/ocr/page", tk.AccessToken, ""); r.StatusCode != 200 {
		t.Fatalf("token from client_credentials refused: %d %s", r.StatusCode, b)
	}
	// The API key itself works as a bearer token, as OpenAI SDKs send it.
	if r, b := g.do("GET", "/ocr/page", key, ""); r.StatusCode != 200 {
		t.Fatalf("API key as bearer refused: %d %s", r.StatusCode, b)
	}
	if got := (*up.last.Load()).Get("Authorization"); got != "" {
		t.Fatalf("the caller's Authorization reached the upstream: %q", got)
	}
	wrong := key[:len(key)-2] + "xx"
	if resp, body := g.form("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_secret": {wrong}}); resp.StatusCode != 401 || !strings.Contains(string(body), "invalid_client") {
		t.Fatalf("wrong secret: %d %s", resp.StatusCode, body)
	}
	id := strings.Split(key, "_")[1]
	g.mustCLI("key", "revoke", id)
	if !eventually(2*time.Second, func() bool { r, _ := g.do("GET", "/ocr/page", key, ""); return r.StatusCode == 401 }) {
		t.Fatal("revoked API key still accepted after 2 s")
	}
}

func TestRevocation(t *testing.T) {
	up := newUpstream(t)
	g := setup(t, routeYAML(up.URL))
	g.mustCLI("user", "add", "carol", "--password", "carol-password", "--tenant", "acme", "--role", "user")

	t.Run("revoked access token is refused on the next request", func(t *testing.T) {
		tk := g.login("carol", "carol-password")
		if r, _ := g.do("GET", "/ocr/x", tk.AccessToken, ""); r.StatusCode != 200 {
			t.Fatalf("fresh token refused: %d", r.StatusCode)
		}
		if r, _ := g.form("/oauth/revoke", url.Values{"token": {tk.AccessToken}}); r.StatusCode != 200 {
			t.Fatalf("revoke: %d", r.StatusCode)
		}
		if r, _ := g.do("GET", "/ocr/x", tk.AccessToken, ""); r.StatusCode != 401 {
			t.Fatalf("revoked token accepted: %d", r.StatusCode)
		}
	})
	t.Run("revoked refresh token cannot be used", func(t *testing.T) {
		tk := g.login("carol", "carol-password")
		g.form("/oauth/revoke", url.Values{"token": {tk.RefreshToken}})
		if r, _ := g.form("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tk.RefreshToken}}); r.StatusCode != 400 {
			t.Fatalf("revoked refresh token accepted: %d", r.StatusCode)
		}
	})
	t.Run("unknown tokens revoke quietly", func(t *testing.T) {
		if r, _ := g.form("/oauth/revoke", url.Values{"token": {"whatever"}}); r.StatusCode != 200 {
			t.Fatalf("revoke of garbage: %d, want 200 (RFC 7009)", r.StatusCode)
		}
	})
	t.Run("user disabled by the CLI is refused within a second", func(t *testing.T) {
		tk := g.login("carol", "carol-password")
		g.mustCLI("user", "disable", "carol")
		if !eventually(time.Second, func() bool { r, _ := g.do("GET", "/ocr/x", tk.AccessToken, ""); return r.StatusCode == 401 }) {
			t.Fatal("token of a disabled user still accepted after 1 s")
		}
		g.mustCLI("user", "enable", "carol")
	})
	t.Run("admin revokes all of a user's tokens", func(t *testing.T) {
		admin := g.login("admin", adminPassword).AccessToken
		tk := g.login("carol", "carol-password")
		_, body := g.do("GET", "/admin/v1/users", admin, "")
		var list struct{ Users []struct{ ID, Name string } }
		_ = json.Unmarshal(body, &list)
		var id string
		for _, u := range list.Users {
			if u.Name == "carol" {
				id = u.ID
			}
		}
		if r, b := g.do("POST", "/admin/v1/users/"+id+"/revoke", admin, ""); r.StatusCode != 200 {
			t.Fatalf("admin revoke: %d %s", r.StatusCode, b)
		}
		if r, _ := g.do("GET", "/ocr/x", tk.AccessToken, ""); r.StatusCode != 401 {
			t.Fatalf("token issued before the revocation accepted: %d", r.StatusCode)
		}
		if r, _ := g.form("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tk.RefreshToken}}); r.StatusCode != 400 {
			t.Fatalf("refresh token survived the user revocation: %d", r.StatusCode)
		}
	})
}

func TestAdminAPIIsForAdminsOnly(t *testing.T) {
	g := setup(t, "")
	g.mustCLI("user", "add", "dave", "--password", "dave-password", "--tenant", "acme", "--role", "user")
	g.mustCLI("user", "add", "erin", "--password", "erin-password", "--tenant", "globex", "--role", "user")
	dave := g.login("dave", "dave-password").AccessToken
	for _, path := range []string{"/admin/v1/users", "/admin/v1/tenants", "/admin/v1/plans"} {
		if r, _ := g.do("GET", path, dave, ""); r.StatusCode != 403 {
			t.Errorf("user got %d on %s, want 403", r.StatusCode, path)
		}
		if r, _ := g.do("GET", path, "", ""); r.StatusCode != 401 {
			t.Errorf("anonymous got %d on %s, want 401", r.StatusCode, path)
		}
	}
	admin := g.login("admin", adminPassword).AccessToken
	r, body := g.do("POST", "/admin/v1/users", admin, `{"name":"frank","password":"frank-password","tenant":"acme","role":"user"}`)
	if r.StatusCode != 201 || strings.Contains(string(body), "argon2") {
		t.Fatalf("create user: %d %s", r.StatusCode, body)
	}
	if r, body := g.do("POST", "/admin/v1/users", admin, `{"name":"frank","password":"frank-password","tenant":"acme","role":"user"}`); r.StatusCode != 409 {
		t.Fatalf("duplicate user: %d %s", r.StatusCode, body)
	}
	if r, body := g.do("POST", "/admin/v1/users", admin, `{"name":"gina","password":"gina-password","tenant":"acme","role":"wizard"}`); r.StatusCode != 400 || !strings.Contains(string(body), "unknown role") {
		t.Fatalf("unknown role: %d %s", r.StatusCode, body)
	}
	if r, _ := g.do("GET", "/admin/v1/users/usr_doesnotexist", admin, ""); r.StatusCode != 404 {
		t.Fatalf("unknown user id: %d, want 404", r.StatusCode)
	}
	g.login("frank", "frank-password")
}

// TestInternalToken shows an upstream of a route with internal_token: true
// receiving a short-lived token that it can verify with the keys at
// /.well-known/internal-jwks.json — and that the access keys do not verify.
func TestInternalToken(t *testing.T) {
	up := newUpstream(t)
	g := setup(t, `routes:
  - name: voice
    path: /voice/
    upstreams: [`+up.URL+`]
    internal_token: true
`)
	tk := g.login("admin", adminPassword)
	if r, b := g.do("POST", "/voice/clone", tk.AccessToken, `{}`); r.StatusCode != 200 {
		t.Fatalf("call: %d %s", r.StatusCode, b)
	}
	internal := (*up.last.Load()).Get("X-Tollgate-Token")
	if internal == "" || internal == tk.AccessToken {
		t.Fatalf("upstream got internal token %q", internal)
	}
	parsed, err := jwt.ParseSigned(internal, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	keysAt := func(path string) *jose.JSONWebKeySet {
		_, body := g.do("GET", path, "", "")
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(body, &set); err != nil {
			t.Fatal(err)
		}
		return &set
	}
	kid := parsed.Headers[0].KeyID
	if len(keysAt("/.well-known/jwks.json").Key(kid)) != 0 {
		t.Fatal("the internal token is signed with an access key")
	}
	keys := keysAt("/.well-known/internal-jwks.json").Key(kid)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in the internal JWKS", kid)
	}
	var claims jwt.Claims
	if err := parsed.Claims(keys[0].Key, &claims); err != nil {
		t.Fatalf("internal token does not verify: %v", err)
	}
	if err := claims.Validate(jwt.Expected{Time: time.Now()}); err != nil || time.Until(claims.Expiry.Time()) > 2*time.Minute {
		t.Fatalf("internal token claims %+v: %v; want short-lived", claims, err)
	}
	if len(claims.Audience) != 1 || claims.Audience[0] != "voice" {
		t.Fatalf("audience %v, want the route name", claims.Audience)
	}
	// A caller cannot pass its own internal token through.
	req, _ := http.NewRequest("POST", g.URL+"/voice/clone", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+tk.AccessToken)
	req.Header.Set("X-Tollgate-Token", "forged")
	send(t, req)
	if got := (*up.last.Load()).Get("X-Tollgate-Token"); got == "forged" {
		t.Fatal("a client-set X-Tollgate-Token reached the upstream")
	}
}

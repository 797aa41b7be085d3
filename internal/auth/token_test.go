package auth_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestRefresh(t *testing.T) {
	t.Parallel()
	g := setup(t)
	u := g.user("alice", "alice-password", "user")
	refresh := func(rt string) (int, map[string]any) {
		status, _, body := g.form("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		return status, body
	}

	first := g.mustLogin("alice", "alice-password")
	status, second := refresh(first.RefreshToken)
	if status != http.StatusOK || second["refresh_token"] == first.RefreshToken || second["refresh_token"] == "" {
		t.Fatalf("rotation = %d %v", status, second)
	}
	at2 := second["access_token"].(string)
	if s, _ := g.me(at2); s != http.StatusOK {
		t.Fatalf("rotated access token refused: %d", s)
	}
	ev := g.audit(tollgate.AuditQuery{Action: tollgate.AuditRefresh})[0]
	if ev.Outcome != "ok" || ev.Actor != u.ID || ev.Target == "" {
		t.Fatalf("audit of a rotation %+v", ev)
	}
	family := ev.Target

	t.Run("replaying a rotated token revokes the whole family", func(t *testing.T) {
		status, body := refresh(first.RefreshToken)
		if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("replay = %d %v, want 400 invalid_grant", status, body)
		}
		// The newest token of the family and its access tokens are dead.
		if status, body := refresh(second["refresh_token"].(string)); status != http.StatusBadRequest {
			t.Fatalf("refresh after replay = %d %v, want 400", status, body)
		}
		for name, at := range map[string]string{"first": first.AccessToken, "rotated": at2} {
			if s, _ := g.me(at); s != http.StatusUnauthorized {
				t.Errorf("%s access token of a revoked family: %d, want 401", name, s)
			}
		}
		var replay *tollgate.AuditEvent
		for _, e := range g.audit(tollgate.AuditQuery{Action: tollgate.AuditRefresh}) {
			if strings.Contains(e.Reason, "replayed") {
				replay = e
			}
		}
		if replay == nil || replay.Outcome != "invalid_grant" || replay.Target != family || replay.Actor != u.ID {
			t.Fatalf("audit of the replay %+v", replay)
		}
	})
	t.Run("another login is a new family and works", func(t *testing.T) {
		tk := g.mustLogin("alice", "alice-password")
		if status, _ := refresh(tk.RefreshToken); status != http.StatusOK {
			t.Fatalf("refresh of a new family: %d", status)
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		for _, tt := range []struct {
			form url.Values
			want string
		}{
			{url.Values{"grant_type": {"refresh_token"}}, "invalid_request"},
			{url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"tgr_nonsense"}}, "invalid_grant"},
			{url.Values{"grant_type": {"password"}}, "unsupported_grant_type"},
			{url.Values{}, "invalid_request"},
		} {
			status, _, body := g.form("/oauth/token", tt.form)
			if status != http.StatusBadRequest || body["error"] != tt.want {
				t.Errorf("%v = %d %v, want 400 %s", tt.form, status, body, tt.want)
			}
		}
	})
	t.Run("a disabled user cannot refresh", func(t *testing.T) {
		tk := g.mustLogin("alice", "alice-password")
		if err := g.auth.SetDisabled(t.Context(), u.ID, true); err != nil {
			t.Fatal(err)
		}
		if status, _ := refresh(tk.RefreshToken); status != http.StatusBadRequest {
			t.Fatalf("refresh of a disabled user = %d, want 400", status)
		}
	})
}

func TestClientCredentials(t *testing.T) {
	t.Parallel()
	g := setup(t)
	u := g.user("svc", "svc-password-1", "user")
	raw, key := token.NewAPIKey(u.ID, "ci", time.Now())
	if err := g.db.APIKeys().CreateAPIKey(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	t.Run("in the form", func(t *testing.T) {
		status, _, body := g.form("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {key.ID}, "client_secret": {raw}})
		if status != http.StatusOK || body["refresh_token"] != nil {
			t.Fatalf("client_credentials = %d %v, want 200 without a refresh token", status, body)
		}
		if s, me := g.me(body["access_token"].(string)); s != http.StatusOK || me["user_id"] != u.ID {
			t.Fatalf("/v1/me = %d %v", s, me)
		}
		ev := g.audit(tollgate.AuditQuery{Action: tollgate.AuditClientCredentials})[0]
		if ev.Outcome != "ok" || ev.Actor != u.ID || ev.Target != key.ID || strings.Contains(ev.Detail+ev.Reason, raw) {
			t.Fatalf("audit %+v", ev)
		}
	})
	t.Run("with HTTP Basic", func(t *testing.T) {
		status, _, body := g.form("/oauth/token", url.Values{"grant_type": {"client_credentials"}}, key.ID, raw)
		if status != http.StatusOK {
			t.Fatalf("client_credentials with Basic = %d %v", status, body)
		}
	})
	t.Run("refused", func(t *testing.T) {
		for name, form := range map[string]url.Values{
			"wrong secret":       {"grant_type": {"client_credentials"}, "client_secret": {raw[:len(raw)-2] + "xx"}},
			"client_id mismatch": {"grant_type": {"client_credentials"}, "client_id": {"tgk_other"}, "client_secret": {raw}},
			"no secret":          {"grant_type": {"client_credentials"}, "client_id": {key.ID}},
		} {
			status, hdr, body := g.form("/oauth/token", form)
			if status != http.StatusUnauthorized || body["error"] != "invalid_client" || hdr.Get("WWW-Authenticate") == "" {
				t.Errorf("%s = %d %v, want 401 invalid_client", name, status, body)
			}
		}
		failed := g.audit(tollgate.AuditQuery{Action: tollgate.AuditClientCredentials, Limit: 3})
		for _, e := range failed {
			if e.Outcome != "invalid_client" || e.Reason == "" {
				t.Errorf("audit of a refused client %+v", e)
			}
		}
	})
	t.Run("the API key works as a bearer credential", func(t *testing.T) {
		if s, me := g.me(raw); s != http.StatusOK || me["user_id"] != u.ID {
			t.Fatalf("/v1/me with the API key = %d %v", s, me)
		}
	})
}

func TestRevokeEndpoint(t *testing.T) {
	t.Parallel()
	g := setup(t)
	u := g.user("alice", "alice-password", "user")
	revoke := func(tok string) int {
		status, _, _ := g.form("/oauth/revoke", url.Values{"token": {tok}})
		return status
	}
	t.Run("an access token", func(t *testing.T) {
		tk := g.mustLogin("alice", "alice-password")
		if s := revoke(tk.AccessToken); s != http.StatusOK {
			t.Fatalf("revoke = %d", s)
		}
		if s, _ := g.me(tk.AccessToken); s != http.StatusUnauthorized {
			t.Fatalf("revoked access token: %d, want 401", s)
		}
		// Its refresh token still works: only the access token was revoked.
		if s, _, _ := g.form("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tk.RefreshToken}}); s != http.StatusOK {
			t.Fatalf("refresh after revoking the access token: %d", s)
		}
		ev := g.audit(tollgate.AuditQuery{Action: tollgate.AuditRevoke})[0]
		if ev.Outcome != "ok" || ev.Actor != u.ID || !strings.HasPrefix(ev.Target, "jti ") {
			t.Fatalf("audit %+v", ev)
		}
	})
	t.Run("a refresh token ends its family", func(t *testing.T) {
		tk := g.mustLogin("alice", "alice-password")
		if s := revoke(tk.RefreshToken); s != http.StatusOK {
			t.Fatalf("revoke = %d", s)
		}
		if s, _, _ := g.form("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tk.RefreshToken}}); s != http.StatusBadRequest {
			t.Fatalf("refresh with a revoked token: %d, want 400", s)
		}
		if s, _ := g.me(tk.AccessToken); s != http.StatusUnauthorized {
			t.Fatalf("access token of a revoked family: %d, want 401", s)
		}
		if ev := g.audit(tollgate.AuditQuery{Action: tollgate.AuditRevoke})[0]; !strings.HasPrefix(ev.Target, "family ") {
			t.Fatalf("audit %+v", ev)
		}
	})
	t.Run("an unknown token is 200 and changes nothing", func(t *testing.T) {
		if s := revoke("not-a-token"); s != http.StatusOK {
			t.Fatalf("revoke = %d, want 200 (RFC 7009)", s)
		}
		if ev := g.audit(tollgate.AuditQuery{Action: tollgate.AuditRevoke})[0]; ev.Target != "" || !strings.Contains(ev.Reason, "nothing to revoke") {
			t.Fatalf("audit %+v", ev)
		}
	})
	t.Run("no token is 400", func(t *testing.T) {
		status, _, body := g.form("/oauth/revoke", url.Values{})
		if status != http.StatusBadRequest || body["error"] != "invalid_request" {
			t.Fatalf("revoke = %d %v", status, body)
		}
	})
}

func TestDiscovery(t *testing.T) {
	t.Parallel()
	g := setup(t)
	resp, err := http.Get(g.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"issuer": "http://gw.test", "jwks_uri": "http://gw.test/.well-known/jwks.json",
		"token_endpoint": "http://gw.test/oauth/token", "revocation_endpoint": "http://gw.test/oauth/revoke",
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %v, want %s", k, doc[k], v)
		}
	}
	if algs, _ := doc["access_token_signing_alg_values_supported"].([]any); len(algs) != 1 || algs[0] != "ES256" {
		t.Errorf("algorithms %v, want [ES256]", doc["access_token_signing_alg_values_supported"])
	}
	if scopes, _ := doc["scopes_supported"].([]any); len(scopes) != 2 {
		t.Errorf("scopes_supported %v, want infer:text and infer:image", doc["scopes_supported"])
	}

	resp, err = http.Get(g.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid, Kty, Alg string
			D             string `json:"d"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Type") != "application/jwk-set+json" || len(set.Keys) == 0 {
		t.Fatalf("JWKS %s %+v", resp.Header.Get("Content-Type"), set)
	}
	// A token's kid is in the published set, which holds no private key.
	tk := g.mustLogin(g.user("kid", "kid-password", "user").Name, "kid-password")
	kid := headerKid(t, tk.AccessToken)
	found := false
	for _, k := range set.Keys {
		found = found || k.Kid == kid
		if k.D != "" {
			t.Errorf("JWKS publishes a private key")
		}
	}
	if !found {
		t.Errorf("token kid %q not in JWKS %+v", kid, set.Keys)
	}
}

func TestBearerRequired(t *testing.T) {
	t.Parallel()
	g := setup(t)
	for name, bearer := range map[string]string{"none": "", "garbage": "abc.def.ghi", "unknown API key": "tgk_x_y"} {
		req, _ := http.NewRequest(http.MethodGet, g.URL+"/v1/me", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: %d %q, want 401 with a Bearer challenge", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
}

func headerKid(t *testing.T, jws string) string {
	t.Helper()
	part, _, _ := strings.Cut(jws, ".")
	b, err := base64URL(part)
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Kid, Typ string }
	if err := json.Unmarshal(b, &h); err != nil || h.Typ != "at+jwt" {
		t.Fatalf("token header %s: %v", b, err)
	}
	return h.Kid
}

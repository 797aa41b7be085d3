package main

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestTenantDisabled disables a tenant through the admin API of one
// replica: within a second every credential of its users — an access
// token, an API key, a browser session — is refused on the other replica
// (on one node, the same one), and their logins, refreshes and
// client_credentials grants fail, while another
// tenant's user goes on. The CLI lists the tenant as disabled and enables
// it again.
func TestTenantDisabled(t *testing.T) {
	run := func(t *testing.T, a, b *testGateway) {
		a.mustCLI("user", "add", "ana", "--password", "ana-password", "--tenant", "acme", "--role", "user")
		a.mustCLI("user", "add", "bob", "--password", "bob-password", "--tenant", "globex", "--role", "user")
		key := strings.TrimSpace(a.mustCLI("key", "create", "--user", "ana"))
		login := b.login("ana", "ana-password")
		tok := login.AccessToken
		bob := b.login("bob", "bob-password").AccessToken
		browser := newBrowser(t, b.URL, nil)
		browser.mustLogin("ana", "ana-password")
		for name, ok := range map[string]bool{
			"token":   statusOf(b, "/app/x", tok) == 200,
			"key":     statusOf(b, "/app/x", key) == 200,
			"session": func() bool { r, _ := browser.do("GET", "/app/x", nil, nil); return r.StatusCode == 200 }(),
		} {
			if !ok {
				t.Fatalf("ana's %s refused before the tenant is disabled", name)
			}
		}

		admin := a.login("admin", adminPassword).AccessToken
		if r, body := a.do("POST", "/admin/v1/tenants/acme/disable", admin, ""); r.StatusCode != 200 || !strings.Contains(string(body), `"disabled":true`) {
			t.Fatalf("disable acme: %d %s", r.StatusCode, body)
		}
		start := time.Now()
		if !eventually(time.Second, func() bool {
			r, _ := browser.do("GET", "/app/x", nil, nil)
			return statusOf(b, "/app/x", tok) == 401 && statusOf(b, "/app/x", key) == 401 && r.StatusCode == 401
		}) {
			t.Fatalf("a second after acme was disabled: token %d, key %d", statusOf(b, "/app/x", tok), statusOf(b, "/app/x", key))
		}
		t.Logf("every credential refused after %v", time.Since(start))
		if r, _ := b.do("POST", "/auth/login", "", `{"username":"ana","password":"ana-password"}`); r.StatusCode != 401 {
			t.Errorf("login of a disabled tenant's user: %d, want 401", r.StatusCode)
		}
		if r, _ := browser.loginForm("ana", "ana-password"); r.StatusCode != 401 {
			t.Errorf("login form of a disabled tenant's user: %d, want 401", r.StatusCode)
		}
		for grant, form := range map[string]url.Values{
			"refresh_token":      {"grant_type": {"refresh_token"}, "refresh_token": {login.RefreshToken}},
			"client_credentials": {"grant_type": {"client_credentials"}, "client_secret": {key}},
		} {
			if r, body := b.form("/oauth/token", form); r.StatusCode == 200 {
				t.Errorf("%s for a disabled tenant's user: %d %s", grant, r.StatusCode, body)
			}
		}
		if got := statusOf(b, "/app/x", bob); got != 200 {
			t.Errorf("another tenant's user: %d, want 200", got)
		}
		if out := a.mustCLI("tenant", "list"); !strings.Contains(out, "acme") || !strings.Contains(out, "disabled") {
			t.Errorf("tenant list:\n%s", out)
		}
		a.mustCLI("tenant", "enable", "acme")
		if !eventually(time.Second, func() bool { return statusOf(b, "/app/x", key) == 200 }) {
			t.Error("ana's API key still refused a second after the tenant was enabled")
		}
	}
	t.Run("one node", func(t *testing.T) {
		up := newUpstream(t)
		g := setup(t, cookieRouteYAML(up.URL))
		run(t, g, g)
	})
	t.Run("two replicas", func(t *testing.T) {
		up := newUpstream(t)
		a, b := setupCluster(t, cookieRouteYAML(up.URL))
		run(t, a, b)
	})
}

// statusOf is the status of a GET of path with a bearer credential.
func statusOf(g *testGateway, path, bearer string) int {
	req, _ := http.NewRequest("GET", g.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestTenantCLI adds, renames, disables and enables a tenant from the
// command line; each change is in the audit trail, and refused changes
// say why.
func TestTenantCLI(t *testing.T) {
	g := setup(t, "")
	if out := g.mustCLI("tenant", "add", "acme", "--name", "Acme"); !strings.Contains(out, "created tenant acme (Acme)") {
		t.Errorf("tenant add: %s", out)
	}
	g.mustCLI("user", "add", "ana", "--password", "ana-password", "--tenant", "acme")
	g.mustCLI("tenant", "rename", "acme", "--name", "Acme Inc")
	g.mustCLI("tenant", "disable", "Acme Inc")
	out := g.mustCLI("tenant", "list")
	if !regexp.MustCompile(`acme\s+Acme Inc\s+1\s+disabled`).MatchString(out) {
		t.Errorf("tenant list:\n%s", out)
	}
	if !eventually(time.Second, func() bool {
		r, _ := g.do("POST", "/auth/login", "", `{"username":"ana","password":"ana-password"}`)
		return r.StatusCode == 401
	}) {
		t.Error("a user of a tenant the CLI disabled still logs in a second later")
	}
	g.mustCLI("tenant", "enable", "acme")
	if out, err := g.cli("tenant", "disable", "nope"); err == nil || !strings.Contains(out+err.Error(), "not found") {
		t.Errorf("disable an unknown tenant: %v %s", err, out)
	}
	if out, err := g.cli("tenant", "rename", "acme"); err == nil {
		t.Errorf("rename without --name: %s", out)
	}
	audit := g.mustCLI("audit", "--action", "tenant.*")
	for _, want := range []string{"tenant.create", "tenant.update", "tenant.disable", "tenant.enable"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %s:\n%s", want, audit)
		}
	}
}

package admin_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// keyWorks reports whether an API key authenticates /v1/me.
func (g *gateway) keyWorks(key string) bool {
	g.t.Helper()
	status, _ := g.call("GET", "/v1/me", key, nil)
	return status == http.StatusOK
}

func TestTenantLifecycle(t *testing.T) {
	t.Parallel()
	g := setup(t)
	g.as(http.StatusCreated, "POST", "/admin/v1/tenants", map[string]any{"id": "acme", "name": "Acme"})
	g.as(http.StatusCreated, "POST", "/admin/v1/tenants", map[string]any{"id": "globex", "name": "Globex"})
	alice := g.as(http.StatusCreated, "POST", "/admin/v1/users", map[string]any{"name": "alice", "password": "alice-password", "tenant": "acme"})["id"].(string)
	g.as(http.StatusCreated, "POST", "/admin/v1/users", map[string]any{"name": "bob", "password": "bob-password", "tenant": "globex"})
	aliceKey := g.as(http.StatusCreated, "POST", "/admin/v1/users/"+alice+"/keys", map[string]any{"name": "ci"})["key"].(string)

	t.Run("rename", func(t *testing.T) {
		got := g.as(http.StatusOK, "PATCH", "/admin/v1/tenants/acme", map[string]any{"name": "Acme Inc"})
		if got["id"] != "acme" || got["name"] != "Acme Inc" || got["users"] != float64(1) || got["updated_at"] == nil {
			t.Errorf("renamed tenant %v", got)
		}
		if got := g.as(http.StatusOK, "GET", "/admin/v1/tenants/Acme Inc", nil); got["id"] != "acme" {
			t.Errorf("tenant by its new name: %v", got)
		}
		g.as(http.StatusBadRequest, "PATCH", "/admin/v1/tenants/acme", map[string]any{"name": " "})
		g.as(http.StatusBadRequest, "PATCH", "/admin/v1/tenants/acme", map[string]any{"disabled": true})
		g.as(http.StatusConflict, "PATCH", "/admin/v1/tenants/acme", map[string]any{"name": "Globex"})
		g.as(http.StatusNotFound, "PATCH", "/admin/v1/tenants/nope", map[string]any{"name": "x"})
		if got := g.as(http.StatusOK, "GET", "/admin/v1/tenants/acme", nil); got["name"] != "Acme Inc" {
			t.Errorf("refused renames changed the tenant: %v", got)
		}
	})

	t.Run("disable refuses every credential of its users", func(t *testing.T) {
		tok := g.login("alice", "alice-password")
		if tok == "" || !g.keyWorks(aliceKey) || !g.keyWorks(tok) {
			t.Fatal("alice cannot authenticate before the tenant is disabled")
		}
		if got := g.as(http.StatusOK, "POST", "/admin/v1/tenants/acme/disable", nil); got["disabled"] != true {
			t.Fatalf("disable = %v", got)
		}
		if g.keyWorks(tok) || g.keyWorks(aliceKey) {
			t.Error("a token or API key of a disabled tenant's user still works")
		}
		if g.login("alice", "alice-password") != "" {
			t.Error("a user of a disabled tenant logged in")
		}
		resp, err := http.PostForm(g.URL+"/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_secret": {aliceKey}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("client_credentials with the key of a disabled tenant's user: %d, want 401", resp.StatusCode)
		}
		if bob := g.login("bob", "bob-password"); bob == "" || !g.keyWorks(bob) {
			t.Error("a user of another tenant was refused")
		}
		list := g.as(http.StatusOK, "GET", "/admin/v1/tenants", nil)["tenants"].([]any)
		var shown []string
		for _, x := range list {
			m := x.(map[string]any)
			shown = append(shown, m["id"].(string)+":"+map[bool]string{true: "off", false: "on"}[m["disabled"].(bool)])
		}
		if got := strings.Join(shown, " "); got != "acme:off globex:on ops:on" {
			t.Errorf("tenants listed as %s", got)
		}
	})

	t.Run("an admin cannot disable their own tenant", func(t *testing.T) {
		g.as(http.StatusConflict, "POST", "/admin/v1/tenants/ops/disable", nil)
		if !g.keyWorks(g.admin) {
			t.Error("the admin was locked out")
		}
		g.as(http.StatusNotFound, "POST", "/admin/v1/tenants/nope/disable", nil)
	})

	t.Run("enable brings the API key back; old tokens stay revoked", func(t *testing.T) {
		old := g.login("bob", "bob-password")
		if got := g.as(http.StatusOK, "POST", "/admin/v1/tenants/acme/enable", nil); got["disabled"] != false {
			t.Fatalf("enable = %v", got)
		}
		g.clock.Advance(2 * time.Second) // past the second of the revocation mark
		if !g.keyWorks(aliceKey) {
			t.Error("alice's API key does not work after the tenant is enabled")
		}
		if g.login("alice", "alice-password") == "" {
			t.Error("alice cannot log in after the tenant is enabled")
		}
		if !g.keyWorks(old) {
			t.Error("enabling one tenant revoked another's tokens")
		}
	})

	t.Run("audited", func(t *testing.T) {
		events, _, _ := g.db.Audit().AuditEvents(t.Context(), tollgate.AuditQuery{Action: "tenant.*"})
		var got []string
		for _, e := range events {
			got = append(got, e.Action+":"+e.Target+":"+e.Outcome)
		}
		want := "tenant.enable:acme:ok tenant.disable:nope:not_found tenant.disable:ops:conflict tenant.disable:acme:ok " +
			"tenant.update:nope:not_found tenant.update:acme:conflict tenant.update:acme:invalid_request_error tenant.update:acme:invalid_request_error " +
			"tenant.update:acme:ok tenant.create:globex:ok tenant.create:acme:ok"
		if strings.Join(got, " ") != want {
			t.Errorf("audited\n%s\nwant\n%s", strings.Join(got, " "), want)
		}
	})
}

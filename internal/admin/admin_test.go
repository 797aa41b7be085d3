package admin_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestOnlyAdmins(t *testing.T) {
	t.Parallel()
	g := setup(t)
	g.as(http.StatusCreated, "POST", "/admin/v1/users", map[string]any{"name": "mallory", "password": "mallory-password", "tenant": "acme"})
	user := g.login("mallory", "mallory-password")
	paths := []struct{ method, path string }{
		{"GET", "/admin/v1/users"}, {"POST", "/admin/v1/users"}, {"GET", "/admin/v1/tenants"},
		{"POST", "/admin/v1/tenants"}, {"GET", "/admin/v1/audit"}, {"POST", "/admin/v1/bans"},
		{"DELETE", "/admin/v1/keys/x"}, {"POST", "/admin/v1/revocations"}, {"PUT", "/admin/v1/things/x"},
	}
	for _, p := range paths {
		if status, body := g.call(p.method, p.path, user, map[string]any{"name": "x"}); status != http.StatusForbidden {
			t.Errorf("%s %s as a user = %d %v, want 403", p.method, p.path, status, body)
		}
		if status, _ := g.call(p.method, p.path, "", nil); status != http.StatusUnauthorized {
			t.Errorf("%s %s without a token = %d, want 401", p.method, p.path, status)
		}
	}
	if g.mounted.Load() != 0 {
		t.Error("a non-admin reached a mounted handler")
	}
	ev := g.lastAudit()
	if ev.Action != tollgate.AuditAdminDenied || ev.Outcome != tollgate.EForbidden || ev.Target != "/admin/v1/things/x" || ev.IP != "127.0.0.1" {
		t.Fatalf("audit of a refused call %+v", ev)
	}
	users := g.as(http.StatusOK, "GET", "/admin/v1/users", nil)["users"].([]any)
	if len(users) != 2 {
		t.Fatalf("users after refused calls: %v", users)
	}
}

func TestUsers(t *testing.T) {
	t.Parallel()
	g := setup(t)
	created := g.as(http.StatusCreated, "POST", "/admin/v1/users", map[string]any{"name": "alice", "password": "alice-password", "tenant": "acme", "plan": "pro"})
	id := created["id"].(string)
	if created["role"] != "user" || created["plan"] != "pro" || created["tenant_id"] != "acme" || created["password_hash"] != nil {
		t.Fatalf("created %v", created)
	}
	ev := g.lastAudit()
	if ev.Action != tollgate.AuditUserCreate || ev.Target != id || ev.ActorName != "root" || !strings.Contains(ev.Detail, "plan=pro") || strings.Contains(ev.Detail, "alice-password") {
		t.Fatalf("audit of user.create %+v", ev)
	}

	t.Run("bad input is refused, audited and changes nothing", func(t *testing.T) {
		for _, tt := range []struct {
			body map[string]any
			want string
		}{
			{map[string]any{"name": "b", "password": "short", "tenant": "acme"}, "at least 8"},
			{map[string]any{"name": "b", "password": "long-enough", "tenant": "acme", "role": "wizard"}, "configured roles: admin, user"},
			{map[string]any{"name": "b", "password": "long-enough", "tenant": "acme", "plan": "gold"}, "unknown plan"},
			{map[string]any{"name": "b", "password": "long-enough"}, "tenant is required"},
			{map[string]any{"name": "b", "password": "long-enough", "tenant": "acme", "admin": true}, "invalid JSON"},
		} {
			status, body := g.call("POST", "/admin/v1/users", g.admin, tt.body)
			msg := fmt.Sprint(body["error"])
			if status != http.StatusBadRequest || !strings.Contains(msg, tt.want) {
				t.Errorf("POST %v = %d %s, want 400 %q", tt.body, status, msg, tt.want)
			}
		}
		if status, _ := g.call("POST", "/admin/v1/users", g.admin, map[string]any{"name": "alice", "password": "long-enough", "tenant": "acme"}); status != http.StatusConflict {
			t.Errorf("duplicate user = %d, want 409", status)
		}
		if ev := g.lastAudit(); ev.Action != tollgate.AuditUserCreate || ev.Outcome != tollgate.EConflict {
			t.Errorf("audit of a refused create %+v", ev)
		}
		if n := len(g.as(http.StatusOK, "GET", "/admin/v1/users", nil)["users"].([]any)); n != 2 {
			t.Errorf("%d users after refused creates, want 2", n)
		}
	})
	t.Run("get and list by tenant", func(t *testing.T) {
		if got := g.as(http.StatusOK, "GET", "/admin/v1/users/"+id, nil); got["name"] != "alice" {
			t.Errorf("get = %v", got)
		}
		g.as(http.StatusNotFound, "GET", "/admin/v1/users/usr_nope", nil)
		list := g.as(http.StatusOK, "GET", "/admin/v1/users?tenant=acme", nil)["users"].([]any)
		if len(list) != 1 || list[0].(map[string]any)["name"] != "alice" {
			t.Errorf("users of acme = %v", list)
		}
	})
	t.Run("changing the role ends the user's tokens", func(t *testing.T) {
		tok := g.login("alice", "alice-password")
		got := g.as(http.StatusOK, "PATCH", "/admin/v1/users/"+id, map[string]any{"role": "admin", "password": "new-alice-password"})
		if got["role"] != "admin" {
			t.Fatalf("patched %v", got)
		}
		if status, _ := g.call("GET", "/v1/me", tok, nil); status != http.StatusUnauthorized {
			t.Errorf("token issued before the change: %d, want 401", status)
		}
		if g.login("alice", "alice-password") != "" {
			t.Error("the old password still works")
		}
		if g.login("alice", "new-alice-password") == "" {
			t.Error("the new password does not work")
		}
		events, _, _ := g.db.Audit().AuditEvents(t.Context(), tollgate.AuditQuery{Action: tollgate.AuditUserUpdate})
		if len(events) != 1 || events[0].Detail != "role=admin password changed" || events[0].Target != id || events[0].Outcome != "ok" {
			t.Errorf("audit of user.update %+v", events)
		}
		g.as(http.StatusBadRequest, "PATCH", "/admin/v1/users/"+id, map[string]any{"plan": "gold"})
		g.as(http.StatusNotFound, "PATCH", "/admin/v1/users/usr_nope", map[string]any{"plan": "free"})
	})
	t.Run("disable, enable and revoke", func(t *testing.T) {
		tok := g.login("alice", "new-alice-password")
		if got := g.as(http.StatusOK, "POST", "/admin/v1/users/"+id+"/disable", nil); got["disabled"] != true {
			t.Fatalf("disable = %v", got)
		}
		if status, _ := g.call("GET", "/v1/me", tok, nil); status != http.StatusUnauthorized {
			t.Errorf("token of a disabled user: %d, want 401", status)
		}
		if g.login("alice", "new-alice-password") != "" {
			t.Error("a disabled user logged in")
		}
		if got := g.as(http.StatusOK, "POST", "/admin/v1/users/"+id+"/enable", nil); got["disabled"] != false {
			t.Fatalf("enable = %v", got)
		}
		tok = g.login("alice", "new-alice-password")
		if tok == "" {
			t.Fatal("an enabled user cannot log in")
		}
		g.clock.Advance(2 * time.Second) // tokens of the revocation's second are covered too
		g.as(http.StatusOK, "POST", "/admin/v1/users/"+id+"/revoke", nil)
		if status, _ := g.call("GET", "/v1/me", tok, nil); status != http.StatusUnauthorized {
			t.Errorf("token after revoke: %d, want 401", status)
		}
		g.as(http.StatusNotFound, "POST", "/admin/v1/users/usr_nope/disable", nil)
		var actions []string
		events, _, _ := g.db.Audit().AuditEvents(t.Context(), tollgate.AuditQuery{Action: "user.*", Actor: "root"})
		for _, e := range events {
			actions = append(actions, e.Action+":"+e.Outcome)
		}
		want := "user.disable:not_found user.revoke:ok user.enable:ok user.disable:ok"
		if got := strings.Join(actions[:4], " "); got != want {
			t.Errorf("audited %s, want %s", got, want)
		}
	})
}

func TestTenantsAndPlans(t *testing.T) {
	t.Parallel()
	g := setup(t)
	g.as(http.StatusCreated, "POST", "/admin/v1/tenants", map[string]any{"id": "acme", "name": "Acme"})
	g.as(http.StatusConflict, "POST", "/admin/v1/tenants", map[string]any{"id": "acme", "name": "Acme"})
	g.as(http.StatusBadRequest, "POST", "/admin/v1/tenants", map[string]any{"id": "x", "name": "y", "z": 1})
	list := g.as(http.StatusOK, "GET", "/admin/v1/tenants", nil)["tenants"].([]any)
	if len(list) != 2 { // ops (the admin's) and acme
		t.Fatalf("tenants %v", list)
	}
	// A user created by tenant name joins that tenant.
	u := g.as(http.StatusCreated, "POST", "/admin/v1/users", map[string]any{"name": "a", "password": "a-password", "tenant": "Acme"})
	if u["tenant_id"] != "acme" {
		t.Errorf("user of tenant Acme has tenant_id %v", u["tenant_id"])
	}
	events, _, _ := g.db.Audit().AuditEvents(t.Context(), tollgate.AuditQuery{Action: tollgate.AuditTenantCreate})
	if len(events) != 2 || events[0].Outcome != tollgate.EConflict || events[1].Target != "acme" || events[1].Outcome != "ok" {
		t.Errorf("audit of tenant.create %+v", events)
	}
	plans := g.as(http.StatusOK, "GET", "/admin/v1/plans", nil)
	if ps := plans["plans"].([]any); len(ps) != 2 || ps[0].(map[string]any)["name"] != "free" || plans["default_plan"] != "free" {
		t.Errorf("plans %v", plans)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	g := setup(t)
	id := g.as(http.StatusCreated, "POST", "/admin/v1/users", map[string]any{"name": "svc", "password": "svc-password", "tenant": "acme"})["id"].(string)
	created := g.as(http.StatusCreated, "POST", "/admin/v1/users/"+id+"/keys", map[string]any{"name": "ci"})
	raw, keyID := created["key"].(string), created["id"].(string)
	if !strings.HasPrefix(raw, "tg_"+keyID+"_") {
		t.Fatalf("key %q does not start with its id %q", raw, keyID)
	}
	if ev := g.lastAudit(); ev.Action != tollgate.AuditKeyCreate || ev.Target != keyID || strings.Contains(ev.Detail, raw) {
		t.Fatalf("audit of key.create %+v", ev)
	}
	list := g.as(http.StatusOK, "GET", "/admin/v1/users/"+id+"/keys", nil)["keys"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["key"] != nil || list[0].(map[string]any)["name"] != "ci" {
		t.Fatalf("keys %v", list)
	}
	if status, me := g.call("GET", "/v1/me", raw, nil); status != http.StatusOK || me["user_id"] != id {
		t.Fatalf("/v1/me with the key = %d %v", status, me)
	}
	g.as(http.StatusOK, "DELETE", "/admin/v1/keys/"+keyID, nil)
	g.clock.Advance(2 * time.Second) // past the one-second key cache
	if status, _ := g.call("GET", "/v1/me", raw, nil); status != http.StatusUnauthorized {
		t.Fatalf("revoked key: %d, want 401", status)
	}
	g.as(http.StatusNotFound, "DELETE", "/admin/v1/keys/tgk_nope", nil)
	g.as(http.StatusNotFound, "POST", "/admin/v1/users/usr_nope/keys", map[string]any{"name": "x"})
	events, _, _ := g.db.Audit().AuditEvents(t.Context(), tollgate.AuditQuery{Action: "key.*"})
	var got []string
	for _, e := range events {
		got = append(got, e.Action+":"+e.Outcome)
	}
	if want := "key.create:not_found key.revoke:not_found key.revoke:ok key.create:ok"; strings.Join(got, " ") != want {
		t.Errorf("audited %v, want %s", got, want)
	}
}

func TestRevokeJTI(t *testing.T) {
	t.Parallel()
	g := setup(t)
	g.as(http.StatusCreated, "POST", "/admin/v1/users", map[string]any{"name": "u", "password": "u-password", "tenant": "acme"})
	tok := g.login("u", "u-password")
	_, me := g.call("GET", "/v1/me", tok, nil)
	if me["user_id"] == nil {
		t.Fatal(me)
	}
	jti := jtiOf(t, tok)
	g.as(http.StatusOK, "POST", "/admin/v1/revocations", map[string]any{"jti": jti})
	if status, _ := g.call("GET", "/v1/me", tok, nil); status != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d, want 401", status)
	}
	if ev := g.lastAudit(); ev.Action != tollgate.AuditRevoke || ev.Target != "jti "+jti || ev.ActorName != "root" {
		t.Fatalf("audit %+v", ev)
	}
	g.as(http.StatusBadRequest, "POST", "/admin/v1/revocations", map[string]any{})
}

func TestBans(t *testing.T) {
	t.Parallel()
	g := setup(t)
	ban := g.as(http.StatusCreated, "POST", "/admin/v1/bans", map[string]any{"ip": "192.0.2.7", "duration": "1h", "reason": "scraping"})
	if ban["ip"] != "192.0.2.7" || ban["reason"] != "scraping" {
		t.Fatalf("ban %v", ban)
	}
	if err := g.bans.Check("192.0.2.7"); tollgate.ErrorCode(err) != tollgate.ERateLimited {
		t.Fatalf("banned IP checks %v", err)
	}
	list := g.as(http.StatusOK, "GET", "/admin/v1/bans", nil)["bans"].([]any)
	if len(list) != 1 {
		t.Fatalf("bans %v", list)
	}
	if ev := g.lastAudit(); ev.Action != tollgate.AuditBanAdd || ev.Target != "192.0.2.7" || ev.Reason != "scraping" || !strings.HasPrefix(ev.Detail, "until ") {
		t.Fatalf("audit %+v", ev)
	}
	for _, body := range []map[string]any{{"ip": "not-an-ip"}, {"ip": "192.0.2.8", "duration": "-1h"}, {"ip": "192.0.2.8", "x": 1}} {
		g.as(http.StatusBadRequest, "POST", "/admin/v1/bans", body)
	}
	if err := g.bans.Check("192.0.2.8"); err != nil {
		t.Fatalf("a refused ban applies: %v", err)
	}
	if status, _ := g.call("DELETE", "/admin/v1/bans/192.0.2.7", g.admin, nil); status != http.StatusNoContent {
		t.Fatalf("lift = %d", status)
	}
	if err := g.bans.Check("192.0.2.7"); err != nil {
		t.Fatalf("lifted ban still applies: %v", err)
	}
	g.as(http.StatusNotFound, "DELETE", "/admin/v1/bans/192.0.2.7", nil)
	events, _, _ := g.db.Audit().AuditEvents(t.Context(), tollgate.AuditQuery{Action: "ban.*"})
	var got []string
	for _, e := range events {
		got = append(got, e.Action+":"+e.Outcome)
	}
	want := "ban.lift:not_found ban.lift:ok ban.add:invalid_request_error ban.add:invalid_request_error ban.add:invalid_request_error ban.add:ok"
	if strings.Join(got, " ") != want {
		t.Errorf("audited %v, want %s", got, want)
	}
}

// TestChangesNeedTheirAuditEvent: an admin change whose audit event
// cannot be stored is not made.
func TestChangesNeedTheirAuditEvent(t *testing.T) {
	t.Parallel()
	g := setup(t)
	g.breakAudit()
	if status, _ := g.call("POST", "/admin/v1/tenants", g.admin, map[string]any{"id": "acme", "name": "Acme"}); status < 500 {
		t.Fatalf("create tenant without an audit trail = %d, want a 5xx", status)
	}
	if _, err := g.db.Tenants().Tenant(t.Context(), "acme"); tollgate.ErrorCode(err) != tollgate.ENotFound {
		t.Fatalf("the tenant was created without its audit event: %v", err)
	}
	if status, _ := g.call("POST", "/admin/v1/bans", g.admin, map[string]any{"ip": "192.0.2.7"}); status < 500 {
		t.Fatalf("ban without an audit trail = %d, want a 5xx", status)
	}
	if err := g.bans.Check("192.0.2.7"); err != nil {
		t.Fatal("the ban applies without its audit event")
	}
	if bans, _ := g.db.Bans().Bans(t.Context(), time.Now()); len(bans) != 0 {
		t.Fatalf("the ban was stored without its audit event: %v", bans)
	}
	// A change of another feature is recorded before it runs, so it is
	// refused before it runs.
	status, body := g.call("PUT", "/admin/v1/things/x", g.admin, nil)
	if status != http.StatusServiceUnavailable || g.mounted.Load() != 0 {
		t.Fatalf("mounted change without an audit trail = %d %v (ran %d times), want 503 and not run", status, body, g.mounted.Load())
	}
}

func TestMountedChangesAreAudited(t *testing.T) {
	t.Parallel()
	g := setup(t)
	if status, _ := g.call("PUT", "/admin/v1/things/x", g.admin, nil); status != http.StatusNoContent {
		t.Fatalf("PUT = %d", status)
	}
	g.as(http.StatusBadRequest, "PUT", "/admin/v1/things/bad", nil)
	events, _, _ := g.db.Audit().AuditEvents(t.Context(), tollgate.AuditQuery{Action: tollgate.AuditAdminChange})
	var got []string
	for _, e := range events {
		got = append(got, e.Detail+":"+e.Outcome)
	}
	want := "PUT /admin/v1/things/bad:invalid_request_error PUT /admin/v1/things/bad:requested PUT /admin/v1/things/x:ok PUT /admin/v1/things/x:requested"
	if strings.Join(got, " ") != want {
		t.Errorf("audited %v, want %s", got, want)
	}
}

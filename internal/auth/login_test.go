package auth_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestLogin(t *testing.T) {
	t.Parallel()
	g := setup(t)
	alice := g.user("alice", "alice-password", "user")

	t.Run("success gives working tokens and is audited", func(t *testing.T) {
		tk := g.mustLogin("alice", "alice-password")
		if tk.TokenType != "Bearer" || tk.RefreshToken == "" || tk.ExpiresIn <= 0 || tk.Scope != "infer:text" {
			t.Fatalf("login answer %+v", tk)
		}
		status, me := g.me(tk.AccessToken)
		if status != http.StatusOK || me["user_id"] != alice.ID || me["username"] != "alice" || me["tenant_id"] != "acme" {
			t.Fatalf("/v1/me = %d %v", status, me)
		}
		ev := g.audit(tollgate.AuditQuery{Action: tollgate.AuditLogin})[0]
		if ev.Outcome != "ok" || ev.Actor != alice.ID || ev.ActorName != "alice" || ev.IP != "127.0.0.1" {
			t.Fatalf("audit event %+v", ev)
		}
	})

	bob := g.user("bob", "bob-password", "user")
	carol := g.user("carol", "carol-password", "user")
	if _, err := g.db.Users().UpdateUser(t.Context(), carol.ID, tollgate.UserUpdate{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	// The caller gets one answer for every bad login; the audit trail
	// tells the operator which it was.
	for _, tt := range []struct {
		name, user, password string
		actor                string
		reason               string
	}{
		{"wrong password", "bob", "not-bobs-password", bob.ID, "wrong password"},
		{"unknown user", "nobody", "whatever-password", "", "unknown user"},
		{"disabled user", "carol", "carol-password", carol.ID, "user disabled"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, tk := g.login(tt.user, tt.password)
			if status != http.StatusUnauthorized || tk.AccessToken != "" {
				t.Fatalf("login = %d %+v, want 401", status, tk)
			}
			ev := g.audit(tollgate.AuditQuery{Actor: tt.user, Limit: 1})[0]
			if ev.Action != tollgate.AuditLogin || ev.Outcome != tollgate.EUnauthorized || ev.Reason != tt.reason ||
				ev.Actor != tt.actor || ev.ActorName != tt.user || ev.IP != "127.0.0.1" {
				t.Fatalf("audit event %+v, want reason %q", ev, tt.reason)
			}
		})
	}
	t.Run("a malformed request is audited and refused with 400", func(t *testing.T) {
		resp, err := http.Post(g.URL+"/auth/login", "application/json", strings.NewReader(`{"username":"bob"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", resp.StatusCode)
		}
		ev := g.audit(tollgate.AuditQuery{Limit: 1})[0]
		if ev.Outcome != tollgate.EInvalid || ev.ActorName != "bob" || !strings.Contains(ev.Reason, "missing") {
			t.Fatalf("audit event %+v", ev)
		}
	})
	t.Run("failed logins are in the logs too", func(t *testing.T) {
		logs := g.logs.String()
		for _, want := range []string{`"msg":"audit"`, `"action":"login"`, `"actor_name":"bob"`, `"reason":"wrong password"`, `"ip":"127.0.0.1"`} {
			if !strings.Contains(logs, want) {
				t.Errorf("logs lack %s:\n%s", want, logs)
			}
		}
	})
	t.Run("no password in the audit trail or the logs", func(t *testing.T) {
		all := g.audit(tollgate.AuditQuery{Limit: 1000})
		if len(all) < 5 {
			t.Fatalf("only %d audit events", len(all))
		}
		for _, e := range all {
			for _, pw := range []string{"alice-password", "not-bobs-password", "whatever-password", "carol-password"} {
				if strings.Contains(strings.Join([]string{e.Actor, e.ActorName, e.Target, e.Reason, e.Detail}, " "), pw) {
					t.Errorf("audit event %+v holds a password", e)
				}
				if strings.Contains(g.logs.String(), pw) {
					t.Errorf("the logs hold a password")
				}
			}
		}
	})
}

func TestLoginLockout(t *testing.T) {
	t.Parallel()
	g := setup(t)
	g.user("dave", "dave-password", "user")
	for range 3 { // free failures
		if status, _ := g.login("dave", "wrong-password"); status != http.StatusUnauthorized {
			t.Fatalf("failed login = %d, want 401", status)
		}
	}
	if status, _ := g.login("dave", "wrong-password"); status != http.StatusUnauthorized {
		t.Fatalf("fourth failure = %d, want 401", status)
	}
	body := bytes.NewReader([]byte(`{"username":"dave","password":"dave-password"}`))
	resp, err := http.Post(g.URL+"/auth/login", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("login while backing off = %d (Retry-After %q), want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	ev := g.audit(tollgate.AuditQuery{Limit: 1})[0]
	if ev.Outcome != tollgate.ERateLimited || !strings.Contains(ev.Reason, "backing off") || ev.ActorName != "dave" {
		t.Fatalf("audit event of a refused login %+v", ev)
	}
	g.clock.Advance(time.Hour)
	g.mustLogin("dave", "dave-password")
}

// TestLoginWhileAuditCannotWrite: a login never fails because its audit
// event cannot be stored; the failure is logged.
func TestLoginWhileAuditCannotWrite(t *testing.T) {
	t.Parallel()
	g := setup(t)
	g.user("erin", "erin-password", "user")
	g.breakAudit()
	tk := g.mustLogin("erin", "erin-password")
	if status, _ := g.me(tk.AccessToken); status != http.StatusOK {
		t.Fatalf("token of a login whose audit failed: %d", status)
	}
	if status, _ := g.login("erin", "wrong-password"); status != http.StatusUnauthorized {
		t.Fatalf("bad login = %d, want 401", status)
	}
	logs := g.logs.String()
	if !strings.Contains(logs, "audit event not stored") || strings.Contains(logs, "erin-password") {
		t.Fatalf("logs:\n%s", logs)
	}
}

func ptr[T any](v T) *T { return &v }

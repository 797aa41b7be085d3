package main

import (
	"database/sql"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestAudit follows an operator diagnosing a failed login and checking an
// admin's changes, over HTTP and with tollgate audit against the same
// store.
func TestAudit(t *testing.T) {
	g := setup(t, "")
	resp, _ := g.do("POST", "/auth/login", "", `{"username":"admin","password":"not-the-password"}`)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad login = %d", resp.StatusCode)
	}
	admin := g.login("admin", adminPassword).AccessToken
	if resp, body := g.do("POST", "/admin/v1/users", admin, `{"name":"bob","password":"bob-password","tenant":"acme"}`); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create user = %d %s", resp.StatusCode, body)
	}
	if resp, body := g.do("POST", "/admin/v1/bans", admin, `{"ip":"198.51.100.7","duration":"1h","reason":"abuse"}`); resp.StatusCode != http.StatusCreated {
		t.Fatalf("ban = %d %s", resp.StatusCode, body)
	}
	if resp, body := g.do("PUT", "/admin/v1/budgets/user/bob", admin, `{"amount":"5.00","period":"month"}`); resp.StatusCode >= 300 {
		t.Fatalf("budget = %d %s", resp.StatusCode, body)
	}

	t.Run("the failed login says why and from where", func(t *testing.T) {
		out := g.mustCLI("audit", "--action", "login", "--actor", "admin")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.Contains(lines[0], "REASON") {
			t.Fatalf("audit --action login:\n%s", out)
		}
		failed := lines[2] // newest first
		for _, want := range []string{"login", "invalid_token", "127.0.0.1", "wrong password"} {
			if !strings.Contains(failed, want) {
				t.Errorf("failed login line %q lacks %q", failed, want)
			}
		}
		if strings.Contains(out, "not-the-password") || strings.Contains(out, adminPassword) {
			t.Error("the audit trail shows a password")
		}
	})
	t.Run("admin changes and bans, as JSON and over HTTP", func(t *testing.T) {
		var page struct {
			Events []struct{ Action, Target, Outcome, Detail string } `json:"events"`
			Next   string                                             `json:"next"`
		}
		if err := json.Unmarshal([]byte(g.mustCLI("audit", "--actor", "admin", "--format", "json")), &page); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range page.Events {
			got = append(got, e.Action+":"+e.Outcome)
		}
		want := "admin.change:ok admin.change:requested ban.add:ok user.create:ok login:ok login:invalid_token"
		if strings.Join(got, " ") != want {
			t.Errorf("audit --actor admin = %v, want %s", got, want)
		}
		resp, body := g.do("GET", "/admin/v1/audit?action=ban.*", admin, "")
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"target":"198.51.100.7"`) {
			t.Errorf("GET /admin/v1/audit?action=ban.* = %d %s", resp.StatusCode, body)
		}
	})
	t.Run("pages name their cursor", func(t *testing.T) {
		out := g.mustCLI("audit", "--limit", "2")
		if !strings.Contains(out, "more: tollgate audit --cursor ") {
			t.Fatalf("first page of 2:\n%s", out)
		}
	})
	t.Run("bad filters are clear errors", func(t *testing.T) {
		for _, args := range [][]string{{"audit", "--from", "yesterday"}, {"audit", "--limit", "0"}, {"audit", "--format", "xml"}, {"audit", "extra"}} {
			if out, err := g.cli(args...); err == nil {
				t.Errorf("tollgate %v succeeded:\n%s", args, out)
			}
		}
	})
}

// TestAuditOfCommands: what an operator changes with the command line is
// in the audit trail too, made in one transaction with its event.
func TestAuditOfCommands(t *testing.T) {
	g := setup(t, "")
	g.mustCLI("user", "add", "carl", "--password", "carl-password", "--tenant", "acme")
	g.mustCLI("user", "disable", "carl")
	key := strings.TrimSpace(g.mustCLI("key", "create", "--user", "admin", "--name", "ci"))
	keyID := strings.Split(key, "_")[1]
	g.mustCLI("key", "revoke", keyID)
	g.mustCLI("ban", "add", "203.0.113.9", "--reason", "scan")
	g.mustCLI("ban", "lift", "203.0.113.9")
	g.mustCLI("budget", "set", "--user", "carl", "--amount", "2.00")

	var page struct {
		Events []struct {
			Actor     string
			ActorName string `json:"actor_name"`
			Action    string
			Target    string
			Outcome   string
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(g.mustCLI("audit", "--actor", "cli", "--format", "json")), &page); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range page.Events {
		got = append(got, e.Action+":"+e.Outcome)
		if e.Actor != "cli" || !strings.HasPrefix(e.ActorName, "cli") {
			t.Errorf("event of a command: actor %q %q", e.Actor, e.ActorName)
		}
	}
	want := "admin.change:ok admin.change:requested ban.lift:ok ban.add:ok key.revoke:ok key.create:ok user.disable:ok user.create:ok tenant.create:ok"
	if strings.Join(got, " ") != want {
		t.Errorf("audit of commands = %v, want %s", got, want)
	}
	if page.Events[4].Target != keyID || page.Events[3].Target != "203.0.113.9" {
		t.Errorf("targets %+v", page.Events)
	}

	t.Run("a command's change needs its audit event", func(t *testing.T) {
		db, err := sql.Open("sqlite", filepath.Join(filepath.Dir(g.Config), "data", "tollgate.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`DROP TABLE audit_events`); err != nil {
			t.Fatal(err)
		}
		if out, err := g.cli("user", "add", "dora", "--password", "dora-password", "--tenant", "acme"); err == nil {
			t.Fatalf("user add without an audit trail succeeded:\n%s", out)
		}
		if out, err := g.cli("budget", "set", "--user", "carl", "--amount", "9.00"); err == nil {
			t.Fatalf("budget set without an audit trail succeeded:\n%s", out)
		}
		if out := g.mustCLI("user", "list"); strings.Contains(out, "dora") {
			t.Fatalf("dora was created without her audit event:\n%s", out)
		}
	})
}

package admin_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/admin"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestAuditAPI(t *testing.T) {
	t.Parallel()
	g := setup(t)
	// A failed login of an unknown name, a good one, and admin changes.
	if g.login("ghost", "ghost-password") != "" {
		t.Fatal("unknown user logged in")
	}
	g.as(http.StatusCreated, "POST", "/admin/v1/tenants", map[string]any{"id": "acme"})
	g.as(http.StatusCreated, "POST", "/admin/v1/users", map[string]any{"name": "u1", "password": "u1-password", "tenant": "acme"})
	g.as(http.StatusCreated, "POST", "/admin/v1/bans", map[string]any{"ip": "192.0.2.1"})

	page := func(q string) (events []map[string]any, next string) {
		t.Helper()
		out := g.as(http.StatusOK, "GET", "/admin/v1/audit?"+q, nil)
		for _, e := range out["events"].([]any) {
			events = append(events, e.(map[string]any))
		}
		return events, out["next"].(string)
	}
	actions := func(events []map[string]any) string {
		var a []string
		for _, e := range events {
			a = append(a, e["action"].(string))
		}
		return strings.Join(a, " ")
	}

	all, next := page("")
	if got := actions(all); got != "ban.add user.create tenant.create login login" || next != "" {
		t.Fatalf("audit = %s (next %q)", got, next)
	}
	failed := all[3]
	if failed["actor_name"] != "ghost" || failed["outcome"] != tollgate.EUnauthorized || failed["reason"] != "unknown user" || failed["ip"] != "127.0.0.1" {
		t.Fatalf("failed login as the API shows it: %v", failed)
	}

	t.Run("filters", func(t *testing.T) {
		tests := []struct{ q, want string }{
			{"action=login", "login login"},
			{"actor=ghost", "login"},
			{"actor=root&action=user.*", "user.create"},
			{"action=ban.add", "ban.add"},
			{"from=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), ""},
			{"to=" + time.Now().UTC().Format(time.DateOnly), "ban.add user.create tenant.create login login"}, // a date includes its day
			{"to=" + url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339)), ""},
		}
		for _, tt := range tests {
			if events, _ := page(tt.q); actions(events) != tt.want {
				t.Errorf("?%s = %q, want %q", tt.q, actions(events), tt.want)
			}
		}
	})
	t.Run("pages", func(t *testing.T) {
		var seen []map[string]any
		q := "limit=2"
		for range 4 {
			events, next := page(q)
			seen = append(seen, events...)
			if next == "" {
				break
			}
			q = "limit=2&cursor=" + next
		}
		if actions(seen) != actions(all) {
			t.Fatalf("paged %s, want %s", actions(seen), actions(all))
		}
	})
	t.Run("bad parameters", func(t *testing.T) {
		for _, q := range []string{"limit=0", "limit=5000", "limit=x", "from=yesterday", "cursor=abc", "action=Login", "acter=root",
			"from=2026-11-02&to=2026-11-01"} {
			status, body := g.call("GET", "/admin/v1/audit?"+q, g.admin, nil)
			if status != http.StatusBadRequest || body["error"] == nil {
				t.Errorf("?%s = %d %v, want 400", q, status, body)
			}
		}
	})
}

func TestParseAuditQuery(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		q    string
		want tollgate.AuditQuery
	}{
		{"", tollgate.AuditQuery{Limit: 100}},
		{"from=2026-11-02&to=2026-11-02", tollgate.AuditQuery{From: day, To: day.AddDate(0, 0, 1), Limit: 100}},
		{"to=2026-11-02T10:00:00Z", tollgate.AuditQuery{To: day.Add(10 * time.Hour), Limit: 100}},
		{"actor=alice&action=user.*&cursor=42&limit=7", tollgate.AuditQuery{Actor: "alice", Action: "user.*", Cursor: "42", Limit: 7}},
	}
	for _, tt := range tests {
		v, _ := url.ParseQuery(tt.q)
		got, err := admin.ParseAuditQuery(v)
		if err != nil || !got.From.Equal(tt.want.From) || !got.To.Equal(tt.want.To) || got.Actor != tt.want.Actor ||
			got.Action != tt.want.Action || got.Cursor != tt.want.Cursor || got.Limit != tt.want.Limit {
			t.Errorf("ParseAuditQuery(%q) = %+v, %v; want %+v", tt.q, got, err, tt.want)
		}
	}
}

package main

import (
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestBillingThroughTheBinary meters calls of two tenants on one node and
// reads them back the ways a user would: /v1/me/usage (only the caller's,
// whatever id is asked for), the usage, invoice and export commands, and
// a budget that refuses the call past it until an override lifts it.
func TestBillingThroughTheBinary(t *testing.T) {
	up := newUpstream(t)
	g := setup(t, `plans:
  metered: {budget: {amount: "0.05", period: month}}
routes:
  - name: ocr
    path: /ocr/
    upstreams: [`+up.URL+`]
    price: {per_request: "0.01"}
`)
	g.mustCLI("user", "add", "alice", "--password", "alice-password", "--tenant", "acme", "--role", "user", "--plan", "metered")
	g.mustCLI("user", "add", "bob", "--password", "bob-password", "--tenant", "globex", "--role", "user")
	alice := g.login("alice", "alice-password").AccessToken
	bob := g.login("bob", "bob-password").AccessToken
	call := func(tok string) (int, string) {
		r, body := g.do("POST", "/ocr/page", tok, `{}`)
		var e struct{ Error struct{ Code string } }
		_ = json.Unmarshal(body, &e)
		return r.StatusCode, e.Error.Code
	}
	for range 3 {
		if s, code := call(alice); s != 200 {
			t.Fatalf("alice: %d %s", s, code)
		}
	}
	for range 2 {
		if s, code := call(bob); s != 200 {
			t.Fatalf("bob: %d %s", s, code)
		}
	}

	t.Run("me/usage shows only the caller's usage", func(t *testing.T) {
		var bobID string
		_, body := g.do("GET", "/v1/me", bob, "")
		var me struct {
			UserID string `json:"user_id"`
		}
		_ = json.Unmarshal(body, &me)
		bobID = me.UserID
		var rep struct{ Total struct{ Requests int64 } }
		if !eventually(3*time.Second, func() bool {
			_, body := g.do("GET", "/v1/me/usage?group_by=route&user="+bobID+"&tenant=globex", alice, "")
			_ = json.Unmarshal(body, &rep)
			return rep.Total.Requests == 3
		}) {
			t.Fatalf("alice sees %d requests, want her own 3", rep.Total.Requests)
		}
	})
	// Records are settled asynchronously (group commit): wait until all
	// five are, as a billing run would.
	admin := g.login("admin", adminPassword).AccessToken
	if !eventually(3*time.Second, func() bool {
		var rep struct{ Total struct{ Requests int64 } }
		_, body := g.do("GET", "/admin/v1/usage", admin, "")
		_ = json.Unmarshal(body, &rep)
		return rep.Total.Requests == 5
	}) {
		t.Fatal("the ledger did not settle 5 records within 3 s")
	}
	month := time.Now().UTC().Format("2006-01")
	t.Run("usage command groups by tenant", func(t *testing.T) {
		out := g.mustCLI("usage", "--group-by", "tenant", "--format", "csv")
		rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatalf("usage CSV: %v\n%s", err, out)
		}
		got := map[string]string{}
		for _, r := range rows[1:] {
			got[r[0]] = r[1] + " " + r[len(r)-1]
		}
		if got["acme"] != "3 0.030000" || got["globex"] != "2 0.020000" || got["TOTAL"] != "5 0.050000" {
			t.Fatalf("usage by tenant %v\n%s", got, out)
		}
	})
	t.Run("invoice totals equal the ledger", func(t *testing.T) {
		var inv struct {
			Requests int64
			Total    string
			Lines    []struct{ Cost string }
		}
		if err := json.Unmarshal([]byte(g.mustCLI("invoice", "--tenant", "acme", "--month", month)), &inv); err != nil {
			t.Fatal(err)
		}
		if inv.Requests != 3 || inv.Total != "0.030000" || len(inv.Lines) != 1 {
			t.Fatalf("invoice %+v", inv)
		}
		rows, err := csv.NewReader(strings.NewReader(g.mustCLI("invoice", "--tenant", "acme", "--month", month, "--format", "csv"))).ReadAll()
		if err != nil || len(rows) < 2 {
			t.Fatalf("invoice CSV: %v %v", rows, err)
		}
	})
	t.Run("export resumes from its cursor", func(t *testing.T) {
		out := g.mustCLI("export")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 5 {
			t.Fatalf("export gave %d events, want 5:\n%s", len(lines), out)
		}
		var ev struct {
			ID, SpecVersion, Type string
			Sequence              string `json:"sequence"`
		}
		if err := json.Unmarshal([]byte(lines[4]), &ev); err != nil || ev.ID == "" || ev.SpecVersion != "1.0" || ev.Sequence == "" {
			t.Fatalf("event %s: %v", lines[4], err)
		}
		seq := ev.Sequence
		if more := strings.TrimSpace(g.mustCLI("export", "--after", seq)); more != "" {
			t.Fatalf("export after the last cursor gave:\n%s", more)
		}
	})
	t.Run("budget refuses past the limit until raised", func(t *testing.T) {
		for range 2 {
			if s, code := call(alice); s != 200 {
				t.Fatalf("within budget: %d %s", s, code)
			}
		}
		if s, code := call(alice); s != 429 || code != "insufficient_quota" {
			t.Fatalf("past budget: %d %s, want 429 insufficient_quota", s, code)
		}
		_, body := g.do("GET", "/v1/me", alice, "")
		var me struct {
			Budget []struct{ Limit, Remaining string }
		}
		if err := json.Unmarshal(body, &me); err != nil || len(me.Budget) != 1 || me.Budget[0].Limit != "0.050000" || me.Budget[0].Remaining != "0.000000" {
			t.Fatalf("/v1/me budget: %s", body)
		}
		if s, _ := call(bob); s != 200 {
			t.Fatalf("bob (no budget) refused: %d", s)
		}
		g.mustCLI("budget", "set", "--user", "alice", "--amount", "0.10")
		if !eventually(10*time.Second, func() bool { s, _ := call(alice); return s == 200 }) {
			t.Fatal("raised budget not applied by the running gateway within 10 s")
		}
	})
}

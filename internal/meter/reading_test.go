package meter_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/meter"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// serve admits and settles one call started at start with the given
// token usage.
func serve(t *testing.T, m *meter.Meter, p *tollgate.Principal, route, model string, start time.Time, in, out int64) string {
	t.Helper()
	c := call(p, route)
	c.Model, c.Start = model, start
	rel, err := m.Admit(context.Background(), c)
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	rel(context.Background(), &tollgate.Outcome{Status: 200, Result: tollgate.ResultOK, End: start.Add(time.Second),
		Units: tollgate.Units{InputTokens: in, OutputTokens: out}})
	return c.RequestID
}

func TestInvoiceTotalsEqualLedgerSum(t *testing.T) {
	m, l, _ := setup(t, "")
	nov := time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)
	users := []*tollgate.Principal{principal("alice", "acme", ""), principal("=HYPERLINK(\"http://x\")", "acme", ""),
		principal("bob", "acme", ""), principal("carol", "other", "")}
	models := []string{"small", "big, \"quoted\"", "-negative"}
	for i := range 300 {
		p := users[i%len(users)]
		start := nov.Add(time.Duration(i) * 150 * time.Minute) // spills into December
		// Odd token counts give costs with every micro-unit digit in play.
		serve(t, m, p, "tokens", models[i%len(models)], start, int64(i*37%1999), int64(i*53%2999))
	}
	m.Stop()

	want, err := l.Usage(context.Background(), tollgate.UsageQuery{TenantID: "acme", From: nov, To: nov.AddDate(0, 1, 0)})
	if err != nil || len(want) != 1 {
		t.Fatalf("ledger sum: %v %v", want, err)
	}
	var buf bytes.Buffer
	if err := meter.WriteInvoice(context.Background(), l, meter.InvoiceParams{TenantID: "acme", Month: "2026-11", Currency: "EUR"}, &buf); err != nil {
		t.Fatalf("WriteInvoice: %v", err)
	}
	var inv meter.Invoice
	if err := json.Unmarshal(buf.Bytes(), &inv); err != nil {
		t.Fatalf("invoice JSON: %v", err)
	}
	var sum tollgate.Money
	var requests int64
	for _, line := range inv.Lines {
		a, err := tollgate.ParseMoney(line.Amount)
		if err != nil {
			t.Fatalf("line amount %q: %v", line.Amount, err)
		}
		sum += a
		requests += line.Requests
	}
	if inv.Total != want[0].Cost.String() || sum != want[0].Cost || requests != want[0].Requests || inv.Requests != requests {
		t.Errorf("invoice total %s (lines sum %s, %d requests), ledger %s (%d requests)", inv.Total, sum, requests, want[0].Cost, want[0].Requests)
	}
	if len(inv.Lines) != 9 || inv.Currency != "EUR" {
		t.Errorf("%d lines in %s, want 3 users × 3 models in EUR", len(inv.Lines), inv.Currency)
	}

	buf.Reset()
	if err := meter.WriteInvoice(context.Background(), l, meter.InvoiceParams{TenantID: "acme", Month: "2026-11", Format: "csv"}, &buf); err != nil {
		t.Fatalf("WriteInvoice csv: %v", err)
	}
	if !strings.Contains(buf.String(), "\r\n") {
		t.Errorf("CSV lines do not end in CRLF (RFC 4180)")
	}
	rows, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v", err)
	}
	if rows[0][0] != "tenant_id" || rows[0][13] != "amount" || len(rows) != 1+9+1 {
		t.Fatalf("CSV header %v, %d rows; want a header, 9 lines and a total", rows[0], len(rows))
	}
	sum = 0
	for _, row := range rows[1 : len(rows)-1] {
		a, _ := tollgate.ParseMoney(row[13])
		sum += a
		for _, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
				t.Errorf("cell %q would run as a formula", cell)
			}
		}
	}
	last := rows[len(rows)-1]
	if last[2] != "TOTAL" || last[13] != want[0].Cost.String() || sum != want[0].Cost {
		t.Errorf("CSV total row %v, lines sum %s; want %s", last, sum, want[0].Cost)
	}
	if !strings.Contains(buf.String(), `"'=HYPERLINK(""http://x"")"`) || !strings.Contains(buf.String(), `"big, ""quoted"""`) {
		t.Errorf("CSV quoting: %s", buf.String())
	}
}

func TestExportResumesFromCursor(t *testing.T) {
	m, l, _ := setup(t, "")
	ids := map[string]bool{}
	for i := range 25 {
		ids[serve(t, m, principal("u1", "t1", ""), "chat", "", time.Now(), 0, int64(i))] = true
	}
	m.Stop()
	seen := map[string]bool{}
	var cursor int64
	for round := 0; ; round++ {
		var buf bytes.Buffer
		next, err := meter.Export(context.Background(), l, meter.ExportParams{After: cursor, Limit: 10}, &buf)
		if err != nil {
			t.Fatalf("Export: %v", err)
		}
		sc := bufio.NewScanner(&buf)
		lines := 0
		for sc.Scan() {
			var ev meter.CloudEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			if ev.SpecVersion != "1.0" || ev.Type != meter.EventType || ev.Source == "" || ev.Subject != "u1" || ev.Data.Cost != "0.001000" {
				t.Errorf("event %+v", ev)
			}
			if seen[ev.ID] || !ids[ev.ID] {
				t.Errorf("event id %s repeated or unknown", ev.ID)
			}
			seen[ev.ID] = true
			lines++
		}
		if lines == 0 {
			break
		}
		if lines > 10 || next <= cursor {
			t.Fatalf("round %d: %d lines, cursor %d -> %d", round, lines, cursor, next)
		}
		cursor = next
	}
	if len(seen) != 25 {
		t.Errorf("exported %d events, want 25", len(seen))
	}
}

// byHeader is the test's authenticator: the caller named in X-Test-User,
// role from X-Test-Role.
func byHeader(r *http.Request) *tollgate.Principal {
	u := r.Header.Get("X-Test-User")
	if u == "" {
		return nil
	}
	return &tollgate.Principal{UserID: u, TenantID: "t-" + u, Role: r.Header.Get("X-Test-Role")}
}

func get(t *testing.T, h http.Handler, url, user, role string, into any) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, url, nil)
	if user != "" {
		req.Header.Set("X-Test-User", user)
		req.Header.Set("X-Test-Role", role)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if into != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), into); err != nil {
			t.Fatalf("GET %s: %v in %s", url, err, rec.Body.String())
		}
	}
	return rec.Code
}

func TestUsageEndpoints(t *testing.T) {
	cfg := mustConfig(t, "")
	l := mustSQLite(t).Ledger()
	m := mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l, Principal: byHeader})
	day := time.Date(2026, time.November, 10, 12, 0, 0, 0, time.UTC)
	for i := range 6 {
		user := []string{"ann", "ben"}[i%2]
		serve(t, m, &tollgate.Principal{UserID: user, TenantID: "t-" + user}, "chat", "", day.Add(time.Duration(i)*20*time.Hour), 0, 0)
	}
	m.Stop()
	me := httpx.Handle(nil, m.MeUsageHandler())
	admin := httpx.Handle(nil, m.AdminUsageHandler())

	var rep struct {
		Rows  []map[string]any `json:"rows"`
		Total map[string]any   `json:"total"`
	}
	if code := get(t, me, "/v1/me/usage?from=2026-11-01&to=2026-12-01", "ann", "user", &rep); code != 200 {
		t.Fatalf("me: %d", code)
	}
	if len(rep.Rows) != 3 || rep.Rows[0]["day"] != "2026-11-10" || rep.Rows[0]["cost"] != "0.001000" ||
		rep.Total["requests"] != float64(3) || rep.Total["cost"] != "0.003000" {
		t.Errorf("ann's usage by day = %+v", rep)
	}
	for _, r := range rep.Rows {
		if _, ok := r["user_id"]; ok {
			t.Errorf("a day row carries user_id: %v", r)
		}
	}
	// Another user's usage is out of reach whatever the query names.
	if code := get(t, me, "/v1/me/usage?from=2026-11-01&group_by=model&user=ben&tenant=t-ben", "ann", "user", &rep); code != 200 ||
		rep.Total["requests"] != float64(3) {
		t.Errorf("ann asking for ben's usage got %d %+v; want her own 3 requests", code, rep)
	}
	if code := get(t, me, "/v1/me/usage?from=2026-11-01&group_by=user", "ann", "user", nil); code != 400 {
		t.Errorf("group_by=user on /v1/me/usage: %d, want 400", code)
	}
	if code := get(t, me, "/v1/me/usage", "", "", nil); code != 401 {
		t.Errorf("no caller: %d, want 401", code)
	}
	if code := get(t, admin, "/admin/v1/usage?from=2026-11-01", "ann", "user", nil); code != 403 {
		t.Errorf("admin usage as a user: %d, want 403", code)
	}
	if code := get(t, admin, "/admin/v1/usage?from=2026-11-01&to=2026-12-01&group_by=user", "root", "admin", &rep); code != 200 {
		t.Fatalf("admin: %d", code)
	}
	if len(rep.Rows) != 2 || rep.Rows[0]["user_id"] != "ann" || rep.Rows[1]["user_id"] != "ben" ||
		rep.Rows[1]["requests"] != float64(3) || rep.Total["cost"] != "0.006000" {
		t.Errorf("admin usage by user = %+v", rep)
	}
	if code := get(t, admin, "/admin/v1/usage?from=2026-11-01&group_by=tenant&tenant=t-ben", "root", "admin", &rep); code != 200 ||
		len(rep.Rows) != 1 || rep.Rows[0]["tenant_id"] != "t-ben" {
		t.Errorf("admin usage of one tenant = %d %+v", code, rep)
	}
	if code := get(t, admin, "/admin/v1/usage?from=yesterday", "root", "admin", nil); code != 400 {
		t.Errorf("bad from: %d, want 400", code)
	}

	var buf bytes.Buffer
	q := tollgate.UsageQuery{From: day.AddDate(0, 0, -1), GroupBy: tollgate.GroupUser}
	if err := meter.WriteUsage(context.Background(), l, meter.UsageParams{Query: q}, &buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "ann") || !strings.Contains(buf.String(), "TOTAL") || !strings.Contains(buf.String(), "0.006000") {
		t.Errorf("usage table:\n%s", buf.String())
	}
}

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/clienttest"
	"github.com/tollgate/tollgate/internal/demo"
)

// TestBrowserDashboard drives the dashboard of serve --demo in Chromium:
// after three real calls the usage chart is a uPlot canvas counting them;
// a demo/sketch job run from the page shows its progress live and its
// image; an API key is created (shown once, working) and revoked; the user
// gets 403 on the admin pages, which an admin sees, with the usage chart
// and its CSV; the zh-CN page is Chinese; a phone-sized screen has no
// sideways scrolling; no request leaves the gateway's origin. Screenshots
// go to TOLLGATE_SCREENSHOTS, else a temporary directory.
func TestBrowserDashboard(t *testing.T) {
	clients := clienttest.Node(t)
	chromium := clienttest.Chromium(t)
	slot, slotURL := newSlot(t)
	g := setupWith(t, `plans:
  metered: {budget: {amount: "5", period: month}}
jobs:
  - name: test/slot
    backend: http
    upstreams: [`+slotURL+`]
    capacity: 1
    inputs:
      prompt: {type: string, required: true}
`, true)
	key := g.userKey("ana", "metered")
	g.mustCLI("user", "add", "dave", "--password", "password-dave", "--tenant", "globex")
	daveKey := strings.TrimSpace(g.mustCLI("key", "create", "--user", "dave"))
	// Two jobs of test/slot: one held running by its upstream, one queued
	// behind it, for the admin's live queues.
	for _, prompt := range []string{"held", "waiting"} {
		if resp, out := g.do("POST", "/v1/models/test/slot/predictions", key, `{"input":{"prompt":"`+prompt+`"}}`); resp.StatusCode != 201 {
			t.Fatalf("job %s: %d %s", prompt, resp.StatusCode, out)
		}
	}
	<-slot.arrived
	const calls = 3
	for i := range calls {
		body := `{"model":"` + demo.EchoModel + `","messages":[{"role":"user","content":"hello number ` + string(rune('a'+i)) + `"}]}`
		if resp, out := g.do("POST", "/v1/chat/completions", key, body); resp.StatusCode != 200 {
			t.Fatalf("call %d: %d %s", i, resp.StatusCode, out)
		}
	}
	if !eventually(10*time.Second, func() bool {
		_, out := g.do("GET", "/v1/me/usage?group_by=day", key, "")
		var rep struct{ Total struct{ Requests int } }
		return json.Unmarshal(out, &rep) == nil && rep.Total.Requests == calls
	}) {
		t.Fatal("the three calls never reached the usage report")
	}
	shots := screenshotDir(t)
	raw := clients.Run(t, 3*time.Minute, "dashboard.mjs", chromium, g.URL, "ana", "password-ana", "admin", adminPassword, demo.SketchModel, shots)
	var got struct {
		OtherHosts                                                 []string
		ChartRenderedBy                                            string
		ChartTotal                                                 float64
		ChartCanvasInked                                           int
		UsageByModel, BudgetText                                   string
		JobStatuses, JobDownload                                   string
		JobImageWidth                                              int
		KeySecret                                                  string
		KeyCheck                                                   int
		KeyRevokedShown                                            bool
		UserAdminStatus                                            int
		UserAdminText, ZhHeading, ZhLang, ZhBudget                 string
		PhoneScrollWidth                                           int
		AdminLink, AdminUsersStatus                                int
		AdminUsersText, AdminChartRenderedBy                       string
		AdminChartTotal                                            float64
		AdminUsersAfter, CSV, AuditText, QueuesHeading, QueuesText string
		AdminTenantsAfter, SessionsText                            string
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("browser output %s: %v", raw, err)
	}
	t.Logf("browser: %s", raw)
	if got.ChartRenderedBy != "uplot" || got.ChartTotal != calls || got.ChartCanvasInked == 0 {
		t.Errorf("usage chart: rendered by %q, total %v (want %d), inked pixels %d", got.ChartRenderedBy, got.ChartTotal, calls, got.ChartCanvasInked)
	}
	if !strings.Contains(got.UsageByModel, demo.EchoModel) || !strings.Contains(got.UsageByModel, "Requests") {
		t.Errorf("usage by model %q lacks %s or its headings", got.UsageByModel, demo.EchoModel)
	}
	for _, want := range []string{"Limit5", "Spent0.003", "Reserved0.000000", "Remaining4.99"} {
		if !strings.Contains(strings.ReplaceAll(got.BudgetText, " ", ""), want) {
			t.Errorf("budget %q lacks %s", got.BudgetText, want)
		}
	}
	statuses := strings.Split(got.JobStatuses, ",")
	if len(statuses) < 2 || statuses[len(statuses)-1] != "succeeded" || !(strings.Contains(got.JobStatuses, "processing") || strings.Contains(got.JobStatuses, "starting")) {
		t.Errorf("job statuses shown %q: want it seen running, then succeeded", got.JobStatuses)
	}
	if got.JobImageWidth == 0 || !strings.Contains(got.JobDownload, "/v1/results/") {
		t.Errorf("job result: image width %d, download link %q", got.JobImageWidth, got.JobDownload)
	}
	if !strings.HasPrefix(got.KeySecret, "tg_") || got.KeyCheck != 200 || !got.KeyRevokedShown {
		t.Errorf("API key: secret %q works %d, revoked shown %v", got.KeySecret, got.KeyCheck, got.KeyRevokedShown)
	}
	if s, _ := g.do("GET", "/v1/me", got.KeySecret, ""); got.KeySecret != "" && s.StatusCode != 401 {
		if !eventually(3*time.Second, func() bool { s, _ := g.do("GET", "/v1/me", got.KeySecret, ""); return s.StatusCode == 401 }) {
			t.Errorf("the key revoked on the page still works")
		}
	}
	if !strings.Contains(got.SessionsText, "This session") {
		t.Errorf("the sessions table %q does not mark the page's own session", got.SessionsText)
	}
	if got.UserAdminStatus != 403 {
		t.Errorf("user on /ui/admin/users: %d %q, want 403", got.UserAdminStatus, got.UserAdminText)
	}
	if got.ZhLang != "zh-CN" || got.ZhHeading != "仪表盘" || !strings.Contains(got.ZhBudget, "已用") {
		t.Errorf("zh-CN page: lang %q heading %q", got.ZhLang, got.ZhHeading)
	}
	if got.PhoneScrollWidth > 390 {
		t.Errorf("on a 390 px wide screen the page is %d px wide", got.PhoneScrollWidth)
	}
	if got.AdminLink != 1 || got.AdminUsersStatus != 200 || !strings.Contains(got.AdminUsersText, "ana") {
		t.Errorf("admin: link %d, users page %d %q", got.AdminLink, got.AdminUsersStatus, got.AdminUsersText)
	}
	if !strings.Contains(got.AdminUsersAfter, "carolacmeuser") || !strings.Contains(got.AdminUsersAfter, "anaacmeusermeteredDisabled") {
		t.Errorf("after creating carol and disabling ana, the users page shows %q", got.AdminUsersAfter)
	}
	if !eventually(3*time.Second, func() bool { s, _ := g.do("GET", "/v1/me", key, ""); return s.StatusCode == 401 }) {
		t.Error("ana's key still works after the admin disabled ana on the page")
	}
	if !strings.Contains(got.AdminTenantsAfter, "initechInitech0Active") || !strings.Contains(got.AdminTenantsAfter, "globexglobex1Disabled") {
		t.Errorf("after creating initech and disabling globex, the tenants page shows %q", got.AdminTenantsAfter)
	}
	if !eventually(3*time.Second, func() bool { s, _ := g.do("GET", "/v1/me", daveKey, ""); return s.StatusCode == 401 }) {
		t.Error("the key of dave, of tenant globex, still works after the admin disabled globex on the page")
	}
	if got.AdminChartRenderedBy != "uplot" || got.AdminChartTotal < calls {
		t.Errorf("admin usage chart: %q total %v", got.AdminChartRenderedBy, got.AdminChartTotal)
	}
	if !strings.HasPrefix(got.CSV, "user,user_id,requests,") || !strings.Contains(got.CSV, "\nana,usr_") {
		t.Errorf("usage CSV %q", got.CSV)
	}
	if !strings.Contains(got.AuditText, "key.create") || !strings.Contains(got.AuditText, "key.revoke") || !strings.Contains(got.AuditText, "tenant.disable") {
		t.Errorf("audit page lacks the key changes: %q", got.AuditText)
	}
	// A queued job has no upstream yet; a running one has its upstream.
	if got.QueuesHeading != "Live queues" || !strings.Contains(got.QueuesText, "test/slot—10") || !strings.Contains(got.QueuesText, "test/slot"+slotURL+"01") {
		t.Errorf("queues page %q: %q, want test/slot with 1 queued and 1 running on %s", got.QueuesHeading, got.QueuesText, slotURL)
	}
	if len(got.OtherHosts) > 0 {
		t.Errorf("the pages requested other hosts: %v", got.OtherHosts)
	}
	for _, name := range []string{"dashboard.png", "dashboard-zh.png", "dashboard-phone.png", "admin-users.png", "admin-tenants.png", "admin-usage.png", "admin-queues.png"} {
		if fi, err := os.Stat(filepath.Join(shots, name)); err != nil || fi.Size() == 0 {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
}

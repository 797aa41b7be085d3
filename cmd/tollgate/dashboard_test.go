package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// api calls a dashboard endpoint (/ui/api/…) with the browser's cookie,
// the page's CSRF token (when csrf is set) and a JSON body.
func (b *browser) api(method, path, csrf, body string) (int, map[string]any) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Origin", b.base)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// TestDashboardAccess: a user sees the dashboard and gets 403 on the admin
// pages and on the admin API through /ui/api/; an admin gets both; the
// pages' API path reaches no data-plane route.
func TestDashboardAccess(t *testing.T) {
	up := newUpstream(t)
	g := setup(t, cookieRouteYAML(up.URL))
	g.mustCLI("user", "add", "ana", "--password", "ana-password", "--tenant", "acme", "--role", "user")
	ana := newBrowser(t, g.URL, nil)
	page := ana.mustLogin("ana", "ana-password")
	for _, want := range []string{`id="usage-chart"`, `id="jobs"`, `id="keys"`, `/ui/assets/uPlot.iife.min.js`, `id="revoke-sessions"`, `id="show-secret"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the user's dashboard lacks %s", want)
		}
	}
	if strings.Contains(page, `href="/ui/admin/users"`) {
		t.Error("the user's dashboard links to the admin pages")
	}
	admin := newBrowser(t, g.URL, nil)
	admin.mustLogin("admin", adminPassword)

	for _, section := range adminSections() {
		if resp, body := ana.do("GET", "/ui/admin/"+section, nil, nil); resp.StatusCode != 403 || !strings.Contains(body, "administrators only") {
			t.Errorf("user on /ui/admin/%s: %d, want 403 with a message", section, resp.StatusCode)
		}
		if resp, body := admin.do("GET", "/ui/admin/"+section, nil, nil); resp.StatusCode != 200 || !strings.Contains(body, `data-section="`+section+`"`) {
			t.Errorf("admin on /ui/admin/%s: %d", section, resp.StatusCode)
		}
	}
	if status, _ := ana.api("GET", "/ui/api/admin/v1/users", "", ""); status != 403 {
		t.Errorf("user on the admin API through /ui/api/: %d, want 403", status)
	}
	status, users := admin.api("GET", "/ui/api/admin/v1/users", "", "")
	if status != 200 || len(users["users"].([]any)) != 2 {
		t.Errorf("admin lists users through /ui/api/: %d %v", status, users)
	}
	if status, me := ana.api("GET", "/ui/api/v1/me", "", ""); status != 200 || me["username"] != "ana" {
		t.Errorf("/ui/api/v1/me: %d %v", status, me)
	}
	if status, _ := ana.api("GET", "/ui/api/v1/me/usage?group_by=model", "", ""); status != 200 {
		t.Errorf("/ui/api/v1/me/usage: %d", status)
	}
	before := up.hits.Load()
	if status, _ := ana.api("GET", "/ui/api/app/x", "", ""); status != 404 || up.hits.Load() != before {
		t.Errorf("/ui/api/ to a data-plane route: %d, upstream hit %v; want 404 and no hit", status, up.hits.Load() != before)
	}
	if resp, _ := newBrowser(t, g.URL, nil).do("GET", "/ui/api/v1/me", nil, nil); resp.StatusCode == 200 {
		t.Errorf("/ui/api/v1/me without a session: %d", resp.StatusCode)
	}
	if resp, body := ana.do("GET", "/ui/assets/uPlot.iife.min.js", nil, nil); resp.StatusCode != 200 || !strings.Contains(body, "uPlot (v1.6.32)") {
		t.Errorf("embedded uPlot: %d", resp.StatusCode)
	}
}

func adminSections() []string {
	return []string{"users", "tenants", "budgets", "bans", "usage", "queues", "audit"}
}

// TestDashboardLanguage: Accept-Language picks Chinese, ?lang= overrides
// it and is remembered in a cookie.
func TestDashboardLanguage(t *testing.T) {
	g := setup(t, "")
	b := newBrowser(t, g.URL, nil)
	b.mustLogin("admin", adminPassword)
	zh := map[string]string{"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
	_, page := b.do("GET", "/ui/", nil, zh)
	if !strings.Contains(page, `<html lang="zh-CN">`) || !strings.Contains(page, "用量") || !strings.Contains(page, "仪表盘") {
		t.Errorf("Accept-Language zh-CN: the page is not Chinese:\n%.600s", page)
	}
	_, page = b.do("GET", "/ui/", nil, map[string]string{"Accept-Language": "fr-FR,en;q=0.5"})
	if !strings.Contains(page, `<html lang="en">`) || !strings.Contains(page, "Usage") {
		t.Errorf("Accept-Language fr, en: the page is not English")
	}
	resp, page := b.do("GET", "/ui/admin/audit?lang=en", nil, zh)
	if !strings.Contains(page, "Audit log") || setCookie(resp, "tollgate_lang") == nil {
		t.Errorf("?lang=en over Accept-Language zh-CN: English %v, cookie %v", strings.Contains(page, "Audit log"), setCookie(resp, "tollgate_lang"))
	}
	if _, page = b.do("GET", "/ui/", nil, zh); !strings.Contains(page, `<html lang="en">`) {
		t.Error("the language chosen with ?lang=en was not remembered")
	}
	if _, page = b.do("GET", "/ui/?lang=zh-CN", nil, nil); !strings.Contains(page, "审计日志") && !strings.Contains(page, "仪表盘") {
		t.Error("?lang=zh-CN: the page is not Chinese")
	}
	if _, page = b.do("GET", "/ui/?lang=xx", nil, nil); !strings.Contains(page, `<html lang="zh-CN">`) {
		t.Error("an unknown ?lang= replaced the remembered language")
	}
}

// TestDashboardKeys creates and revokes an API key through the pages'
// endpoints: the secret is shown once and works, a change without the
// CSRF token is refused, another user's key cannot be revoked, and a
// revoked key stops working.
func TestDashboardKeys(t *testing.T) {
	g := setup(t, "")
	g.mustCLI("user", "add", "ana", "--password", "ana-password", "--tenant", "acme", "--role", "user")
	g.mustCLI("user", "add", "bob", "--password", "bob-password", "--tenant", "acme", "--role", "user")
	ana, bob := newBrowser(t, g.URL, nil), newBrowser(t, g.URL, nil)
	anaCSRF, bobCSRF := csrfOf(t, ana.mustLogin("ana", "ana-password")), csrfOf(t, bob.mustLogin("bob", "bob-password"))

	if status, _ := ana.api("POST", "/ui/api/v1/me/keys", "", `{"name":"laptop"}`); status != 403 {
		t.Fatalf("create a key without the CSRF token: %d, want 403", status)
	}
	if status, _ := ana.api("POST", "/ui/api/v1/me/keys", anaCSRF, `{"name":"laptop","bogus":1}`); status != 400 {
		t.Errorf("create a key with an unknown field: %d, want 400", status)
	}
	status, key := ana.api("POST", "/ui/api/v1/me/keys", anaCSRF, `{"name":"laptop"}`)
	secret, _ := key["key"].(string)
	id, _ := key["id"].(string)
	if status != 201 || !strings.HasPrefix(secret, "tg_") || id == "" {
		t.Fatalf("create a key: %d %v", status, key)
	}
	if s, me := g.do("GET", "/v1/me", secret, ""); s.StatusCode != 200 || !strings.Contains(string(me), `"username":"ana"`) {
		t.Fatalf("the new key on /v1/me: %d %s", s.StatusCode, me)
	}
	_, list := ana.api("GET", "/ui/api/v1/me/keys", "", "")
	keys := list["keys"].([]any)
	if len(keys) != 1 || keys[0].(map[string]any)["name"] != "laptop" || keys[0].(map[string]any)["key"] != nil {
		t.Errorf("listed keys %v: want laptop without its secret", keys)
	}
	if _, list := bob.api("GET", "/ui/api/v1/me/keys", "", ""); len(list["keys"].([]any)) != 0 {
		t.Errorf("bob sees ana's keys: %v", list)
	}
	if status, _ := bob.api("DELETE", "/ui/api/v1/me/keys/"+id, bobCSRF, ""); status != 404 {
		t.Errorf("bob revokes ana's key: %d, want 404", status)
	}
	if s, _ := g.do("GET", "/v1/me", secret, ""); s.StatusCode != 200 {
		t.Fatalf("ana's key after bob's attempt: %d", s.StatusCode)
	}
	if status, _ := ana.api("DELETE", "/ui/api/v1/me/keys/"+id, "", ""); status != 403 {
		t.Errorf("revoke without the CSRF token: %d, want 403", status)
	}
	if status, _ := ana.api("DELETE", "/ui/api/v1/me/keys/"+id, anaCSRF, ""); status != 200 {
		t.Fatalf("revoke: %d", status)
	}
	if !eventually(3*time.Second, func() bool { s, _ := g.do("GET", "/v1/me", secret, ""); return s.StatusCode == 401 }) {
		t.Error("the revoked key still works")
	}
	// Log out everywhere ends the session.
	if status, _ := ana.api("POST", "/ui/api/v1/me/revoke", anaCSRF, ""); status != 200 {
		t.Fatalf("revoke own sessions: %d", status)
	}
	if !eventually(3*time.Second, func() bool { resp, _ := ana.do("GET", "/ui/", nil, nil); return resp.StatusCode == http.StatusSeeOther }) {
		t.Error("the session lives on after revoking every session")
	}
}

// TestDashboardEndOtherSessions: "End other sessions" ends the user's
// other sessions and access tokens on the spot, while the session asking
// continues with a new cookie; it needs the CSRF token.
func TestDashboardEndOtherSessions(t *testing.T) {
	g := setup(t, "")
	g.mustCLI("user", "add", "ana", "--password", "ana-password", "--tenant", "acme", "--role", "user")
	here, there := newBrowser(t, g.URL, nil), newBrowser(t, g.URL, nil)
	csrf := csrfOf(t, here.mustLogin("ana", "ana-password"))
	there.mustLogin("ana", "ana-password")
	access := g.login("ana", "ana-password").AccessToken

	if resp, _ := here.do("POST", "/ui/sessions/end-others", nil, nil); resp.StatusCode != 403 {
		t.Fatalf("without the CSRF token: %d, want 403", resp.StatusCode)
	}
	if resp, _ := here.do("POST", "/ui/sessions/end-others", nil, map[string]string{"X-CSRF-Token": csrf, "Origin": "http://evil.example"}); resp.StatusCode != 403 {
		t.Fatalf("from another origin: %d, want 403", resp.StatusCode)
	}
	if resp, _ := there.do("GET", "/ui/", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("a refused request ended the other session: %d", resp.StatusCode)
	}
	resp, body := here.do("POST", "/ui/sessions/end-others", nil, map[string]string{"X-CSRF-Token": csrf})
	if resp.StatusCode != 200 || setCookie(resp, "tollgate_session") == nil {
		t.Fatalf("end other sessions: %d %s, new cookie %v", resp.StatusCode, body, setCookie(resp, "tollgate_session"))
	}
	if resp, _ := there.do("GET", "/ui/", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the other session after it was ended: %d, want a redirect to /login", resp.StatusCode)
	}
	if s, _ := g.do("GET", "/v1/me", access, ""); s.StatusCode != 401 {
		t.Errorf("an access token issued before: %d, want 401", s.StatusCode)
	}
	resp, page := here.do("GET", "/ui/", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, `<strong id="user">ana</strong>`) {
		t.Fatalf("the session that asked: %d", resp.StatusCode)
	}
	if newCSRF := csrfOf(t, page); newCSRF == csrf {
		t.Error("the continuing session kept the old CSRF token")
	}
}

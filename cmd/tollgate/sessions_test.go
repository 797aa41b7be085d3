package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestOwnSessions: a user sees their live sessions (two browsers and a
// client's login), the one asking marked current, and ends another from
// the dashboard's API: that browser is logged out within a second, the
// asking one goes on. Another user can neither see nor end them.
func TestOwnSessions(t *testing.T) {
	up := newUpstream(t)
	g := setup(t, cookieRouteYAML(up.URL))
	g.userKey("ana", "")
	bobKey := g.userKey("bob", "")
	first, second := newBrowser(t, g.URL, nil), newBrowser(t, g.URL, nil)
	page := first.mustLogin("ana", "password-ana")
	second.mustLogin("ana", "password-ana")
	client := g.login("ana", "password-ana")

	type session struct {
		ID      string `json:"id"`
		Current bool   `json:"current"`
	}
	list := func(resp *http.Response, body string) []session {
		t.Helper()
		var out struct{ Sessions []session }
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &out) != nil {
			t.Fatalf("sessions: %d %s", resp.StatusCode, body)
		}
		return out.Sessions
	}
	mine := list(first.do("GET", "/ui/api/v1/me/sessions", nil, nil))
	if len(mine) != 3 {
		t.Fatalf("ana's sessions: %+v, want 3 (two browsers, one login)", mine)
	}
	var current, other string
	for _, s := range mine {
		if s.Current {
			current = s.ID
		}
	}
	// The second browser's session is the newest but one: the client's
	// login came last.
	other = mine[1].ID
	if current != mine[2].ID {
		t.Fatalf("the first browser's own session is %q, want the oldest %q: %+v", current, mine[2].ID, mine)
	}
	bearer := func(key string) []session {
		r, b := g.do("GET", "/v1/me/sessions", key, "")
		return list(r, string(b))
	}
	if viaToken := bearer(client.AccessToken); !viaToken[0].Current || viaToken[0].ID == current {
		t.Errorf("listed with the login's token, its own session is not the one marked: %+v", viaToken)
	}
	if got := bearer(bobKey); len(got) != 0 {
		t.Errorf("bob sees sessions %+v", got)
	}
	if resp, _ := g.do("DELETE", "/v1/me/sessions/"+other, bobKey, ""); resp.StatusCode != 404 {
		t.Errorf("bob ending ana's session: %d, want 404", resp.StatusCode)
	}
	if resp, _ := first.do("DELETE", "/ui/api/v1/me/sessions/"+other, nil, nil); resp.StatusCode != 403 {
		t.Errorf("ending a session without the CSRF token: %d, want 403", resp.StatusCode)
	}
	if resp, body := first.do("DELETE", "/ui/api/v1/me/sessions/"+other, nil, map[string]string{"X-CSRF-Token": csrfOf(t, page)}); resp.StatusCode != 204 {
		t.Fatalf("end the second browser's session: %d %s", resp.StatusCode, body)
	}
	if !eventually(time.Second, func() bool { r, _ := second.do("GET", "/app/x", nil, nil); return r.StatusCode == 401 }) {
		t.Fatal("the ended session still works a second later")
	}
	if r, _ := first.do("GET", "/app/x", nil, nil); r.StatusCode != 200 {
		t.Errorf("the session that ended the other: %d, want 200", r.StatusCode)
	}
	if r, _ := g.do("GET", "/v1/me", client.AccessToken, ""); r.StatusCode != 200 {
		t.Errorf("the client's login: %d, want 200", r.StatusCode)
	}
	if got := list(first.do("GET", "/ui/api/v1/me/sessions", nil, nil)); len(got) != 2 {
		t.Errorf("sessions after ending one: %+v, want 2", got)
	}
	if resp, _ := first.do("DELETE", "/ui/api/v1/me/sessions/"+other, nil, map[string]string{"X-CSRF-Token": csrfOf(t, page)}); resp.StatusCode != 404 {
		t.Errorf("ending it again: %d, want 404", resp.StatusCode)
	}
	audit := g.mustCLI("audit", "--action", "token.revoke")
	if !strings.Contains(audit, "family "+other) {
		t.Errorf("audit lacks the ended session:\n%s", audit)
	}
}

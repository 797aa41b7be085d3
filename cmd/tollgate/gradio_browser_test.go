package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/clienttest"
	"github.com/tollgate/tollgate/internal/gradiotest"
)

// TestBrowserGradioUI opens a Gradio app's own page through a route of
// type gradio in Chromium with a logged-in session: the route sends the
// browser to the login form and back; the page carries the session's
// CSRF token and tollgate's script, so its own upload and queue/join
// calls pass and the audio plays; the call is metered to the user, whose
// id the app saw; a form posted to the route from another origin, and
// one from the page without the token, are refused. It saves a
// screenshot of the page.
func TestBrowserGradioUI(t *testing.T) {
	clients := clienttest.Node(t)
	chromium := clienttest.Chromium(t)
	g, open, _ := gradioGateway(t)
	aliceID := userIDOfKey(t, g, g.userKey("alice", ""))
	evil := evilSite(t)
	shots := screenshotDir(t)
	wav := filepath.Join(t.TempDir(), "prompt.wav")
	if err := os.WriteFile(wav, gradiotest.SineWAV(16000, 8000, 220), 0o600); err != nil {
		t.Fatal(err)
	}

	raw := clients.Run(t, 2*time.Minute, "gradio-ui.mjs", chromium, g.URL, "/tts/", evil.URL, "alice", "password-alice", wav, shots)
	t.Logf("browser: %s", raw)
	var got struct {
		LoginRedirect, Back, MetaToken, Status, AudioSrc string
		AudioStatus, AudioBytes                          int
		SameOriginWithoutToken, CrossOrigin              int
		Calls                                            []struct {
			Path   string
			Status int
			CSRF   bool
		}
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("browser output %s: %v", raw, err)
	}
	if got.LoginRedirect != "/login?next=%2Ftts%2F" || got.Back != "/tts/" {
		t.Errorf("the route without a session went to %q, after login to %q; want /login?next=%%2Ftts%%2F and back to /tts/", got.LoginRedirect, got.Back)
	}
	if got.MetaToken == "" {
		t.Error("the app's page carries no csrf-token meta")
	}
	if got.Status != "complete" || got.AudioStatus != 200 || got.AudioBytes < 1000 || !strings.Contains(got.AudioSrc, "/tts/") {
		t.Errorf("the page's call: status %q, audio %s → %d (%d bytes)", got.Status, got.AudioSrc, got.AudioStatus, got.AudioBytes)
	}
	seen := map[string]int{}
	for _, c := range got.Calls {
		if !c.CSRF && c.Status < 400 {
			t.Errorf("POST %s without the token passed: %d", c.Path, c.Status)
		}
		if c.CSRF {
			seen[c.Path] = c.Status
		}
	}
	if seen["gradio_api/upload"] != 200 || seen["gradio_api/queue/join"] != 200 {
		t.Errorf("the page's own calls with the token: %v, want upload and queue/join 200", seen)
	}
	if got.SameOriginWithoutToken != 403 || got.CrossOrigin != 403 {
		t.Errorf("a form posted from the page without the token: %d; from another origin: %d; want 403 both", got.SameOriginWithoutToken, got.CrossOrigin)
	}

	execs := open.Executions()
	if len(execs) != 1 || execs[0].Header.Get("X-User-ID") != aliceID || execs[0].Outcome != gradiotest.Completed {
		t.Fatalf("the app ran %d calls, want 1 of %s completed: %+v", len(execs), aliceID, execs)
	}
	admin := g.login("admin", adminPassword).AccessToken
	var rep struct {
		Rows []struct {
			Route    string `json:"route"`
			Requests int    `json:"requests"`
			Cost     string `json:"cost"`
		} `json:"rows"`
	}
	if !eventually(5*time.Second, func() bool {
		_, body := g.do("GET", "/admin/v1/usage?group_by=route&user="+aliceID, admin, "")
		return json.Unmarshal(body, &rep) == nil && len(rep.Rows) == 1 && rep.Rows[0].Cost != "0.000000"
	}) {
		t.Fatalf("usage of %s by route: %+v", aliceID, rep.Rows)
	}
	if r := rep.Rows[0]; r.Route != "tts" || r.Requests != 1 || !strings.HasPrefix(r.Cost, "0.010") {
		t.Errorf("usage of %s: %+v, want 1 request on tts costing 0.010…", aliceID, r)
	}
}

// TestGradioRouteCookieOrigin: on a gradio route the session cookie
// authenticates a websocket upgrade only from the gateway's own origin
// (a websocket carries no CSRF header, so a foreign Origin is how a
// cross-site hijack shows), and a state-changing call needs the token.
func TestGradioRouteCookieOrigin(t *testing.T) {
	g, _, _ := gradioGateway(t)
	g.userKey("alice", "")
	b := newBrowser(t, g.URL, nil)
	b.mustLogin("alice", "password-alice")
	resp, page := b.do("GET", "/tts/", nil, map[string]string{"Sec-Fetch-Mode": "navigate"})
	if resp.StatusCode != 200 {
		t.Fatalf("the app's page with the session: %d", resp.StatusCode)
	}
	token := csrfOf(t, page)
	ws := map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": "http://evil.example"}
	if resp, _ := b.do("GET", "/tts/gradio_api/queue/join", nil, ws); resp.StatusCode != 403 {
		t.Errorf("websocket upgrade with the cookie from another origin: %d, want 403", resp.StatusCode)
	}
	ws["Origin"] = g.URL
	if resp, _ := b.do("GET", "/tts/gradio_api/queue/join", nil, ws); resp.StatusCode == 403 || resp.StatusCode == 401 {
		t.Errorf("websocket upgrade with the cookie from the gateway's origin: %d, want it passed to the app", resp.StatusCode)
	}
	join := map[string]string{"Content-Type": "application/json"}
	if resp, _ := b.do("POST", "/tts/gradio_api/upload", nil, join); resp.StatusCode != 403 {
		t.Errorf("a POST with the cookie and no CSRF token: %d, want 403", resp.StatusCode)
	}
	join["X-CSRF-Token"], join["Origin"] = token, "http://evil.example"
	if resp, _ := b.do("POST", "/tts/gradio_api/upload", nil, join); resp.StatusCode != 403 {
		t.Errorf("a POST with the token from another origin: %d, want 403", resp.StatusCode)
	}
}

package main

import (
	"encoding/json"
	"html/template"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/clienttest"
)

// crossSite is a page of another origin that posts a form to its target
// as soon as it loads.
var crossSite = template.Must(template.New("evil").Parse(`<!doctype html><html><body>
<form id="f" method="post" action="{{.Target}}"><input name="csrf_token" value="{{.Token}}"><input name="a" value="1"></form>
<script>document.getElementById("f").submit()</script></body></html>`))

// screenshotDir is where browser tests save their screenshots:
// TOLLGATE_SCREENSHOTS when set (created), else a temporary directory.
// The test logs it.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TOLLGATE_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// evilSite serves a page of another origin that posts a form to the URL
// in its target parameter (with the token parameter as csrf_token) as
// soon as it loads.
func evilSite(t *testing.T) *httptest.Server {
	t.Helper()
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = crossSite.Execute(w, map[string]string{"Target": r.URL.Query().Get("target"), "Token": r.URL.Query().Get("token")})
	}))
	t.Cleanup(evil.Close)
	return evil
}

// TestBrowserLogin logs in with Chromium driven by playwright-core: the
// form leads to /ui/ showing the user; the session cookie is HttpOnly and
// SameSite=Lax and invisible to scripts; a form posted from another
// origin (to a cookie route and to /logout) and a same-origin call without
// the CSRF token are refused; logout ends the session. It saves
// screenshots of the login page and of /ui/.
func TestBrowserLogin(t *testing.T) {
	clients := clienttest.Node(t)
	chromium := clienttest.Chromium(t)
	up := newUpstream(t)
	g := setup(t, cookieRouteYAML(up.URL))
	g.mustCLI("user", "add", "ana", "--password", "ana-password", "--tenant", "acme", "--role", "user")
	evil := evilSite(t)
	shots := screenshotDir(t)
	out := clients.Run(t, 2*time.Minute, "browser-session.mjs", chromium, g.URL, evil.URL, "ana", "ana-password", shots)
	var got struct {
		RedirectedTo, ShownUser, AfterLogout string
		Cookie                               *struct {
			HTTPOnly bool   `json:"httpOnly"`
			SameSite string `json:"sameSite"`
			Secure   bool   `json:"secure"`
		}
		ScriptSeesCookie, StillLoggedIn    bool
		CookieAfterLogout                  bool
		FetchWithoutToken, FetchWithToken  int
		CrossOriginPost, CrossOriginLogout int
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("browser output %s: %v", out, err)
	}
	t.Logf("browser: %s", out)
	if got.RedirectedTo != "/login" {
		t.Errorf("/ui/ without a session went to %q, want /login", got.RedirectedTo)
	}
	if got.ShownUser != "ana" {
		t.Errorf("/ui/ shows %q, want ana", got.ShownUser)
	}
	if got.Cookie == nil || !got.Cookie.HTTPOnly || got.Cookie.SameSite != "Lax" || got.Cookie.Secure {
		t.Errorf("session cookie %+v, want HttpOnly, SameSite=Lax (not Secure on plain HTTP)", got.Cookie)
	}
	if got.ScriptSeesCookie {
		t.Error("document.cookie shows the session cookie")
	}
	if got.FetchWithoutToken != 403 || got.FetchWithToken != 200 {
		t.Errorf("same-origin POST: %d without the CSRF token (want 403), %d with it (want 200)", got.FetchWithoutToken, got.FetchWithToken)
	}
	if got.CrossOriginPost != 403 || got.CrossOriginLogout != 403 || !got.StillLoggedIn {
		t.Errorf("cross-origin form posts: %d to a cookie route, %d to /logout (want 403 both); still logged in %v",
			got.CrossOriginPost, got.CrossOriginLogout, got.StillLoggedIn)
	}
	if got.AfterLogout != "/login" || got.CookieAfterLogout {
		t.Errorf("after logout /ui/ went to %q, cookie kept %v", got.AfterLogout, got.CookieAfterLogout)
	}
	for _, name := range []string{"login.png", "ui.png"} {
		if fi, err := os.Stat(filepath.Join(shots, name)); err != nil || fi.Size() == 0 {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
}

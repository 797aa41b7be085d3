package main

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/token"
)

// TestEndedSessionIsNotBanned: a browser whose session ended loads a page
// of a cookie route and its 30 assets again and again. Its page loads are
// sent to /login and its assets get 401, but none of it counts toward
// the IP ban (ban_threshold 5): it guessed nothing, and the user can log
// in again. Bad bearer tokens from the same address still ban it.
func TestEndedSessionIsNotBanned(t *testing.T) {
	up := newUpstream(t)
	g := setup(t, cookieRouteYAML(up.URL)+"protection: {ban_threshold: 5, ban_window: 1m, ban_duration: 10m, login_rate_limit: 1000/m, ip_rate_limit: 1000/s}\n")
	key := g.userKey("ana", "")
	b := newBrowser(t, g.URL, nil)
	page := b.mustLogin("ana", "password-ana")
	if resp, _ := b.do("GET", "/app/index.html", nil, map[string]string{"Sec-Fetch-Mode": "navigate"}); resp.StatusCode != 200 {
		t.Fatalf("the page with a live session: %d", resp.StatusCode)
	}
	ended := b.cookie("tollgate_session")
	if resp, _ := b.do("POST", "/logout", url.Values{"csrf_token": {csrfOf(t, page)}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	// The browser still holds the cookie of the session that ended (as
	// after an expiry or a revocation elsewhere).
	u, _ := url.Parse(g.URL)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: ended.Name, Value: ended.Value, Path: "/"}})

	for round := range 3 {
		resp, _ := b.do("GET", "/app/index.html", nil, map[string]string{"Sec-Fetch-Mode": "navigate", "Accept": "text/html"})
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/login?next=%2Fapp%2Findex.html" {
			t.Fatalf("round %d: the page of an ended session: %d to %q, want 303 to /login?next=%%2Fapp%%2Findex.html", round, resp.StatusCode, loc)
		}
		for i := range 30 {
			resp, _ := b.do("GET", fmt.Sprintf("/app/assets/%d.js", i), nil, map[string]string{"Sec-Fetch-Mode": "no-cors"})
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("round %d: asset %d of an ended session: %d, want 401", round, i, resp.StatusCode)
			}
		}
		// And a browser with no cookie at all.
		if resp, _ := g.do("GET", "/app/assets/x.css", "", ""); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("round %d: an asset without a cookie: %d, want 401", round, resp.StatusCode)
		}
	}
	if resp, body := g.do("GET", "/app/x", key, ""); resp.StatusCode != 200 {
		t.Fatalf("after 90 refused assets the address is refused: %d %s", resp.StatusCode, body)
	}
	b.mustLogin("ana", "password-ana")
	if resp, _ := b.do("GET", "/app/index.html", nil, map[string]string{"Sec-Fetch-Mode": "navigate"}); resp.StatusCode != 200 {
		t.Fatalf("the page after logging in again: %d", resp.StatusCode)
	}

	// An attacker trying tokens on the same route is banned as before.
	for i := range 6 {
		if resp, _ := g.do("GET", "/app/x", fmt.Sprintf("guessed-token-%d", i), ""); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad token %d: %d, want 401", i, resp.StatusCode)
		}
	}
	if resp, _ := g.do("GET", "/app/x", key, ""); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after 6 bad tokens (threshold 5) a valid key: %d, want 429 (banned)", resp.StatusCode)
	}
}

// TestCookieRoutePageGetsTheToken: an http route with cookie_auth serves
// an app's HTML page; opened with the session it carries the session's
// CSRF token and tollgate's script (and is not cached), opened with a
// bearer token it is the app's page byte for byte.
func TestCookieRoutePageGetsTheToken(t *testing.T) {
	const app = `<!doctype html><html><head><title>app</title></head><body>hi</body></html>`
	up := newUpstreamFunc(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("ETag", `"v1"`)
		_, _ = w.Write([]byte(app))
	})
	g := setup(t, cookieRouteYAML(up.URL))
	key := g.userKey("ana", "")
	b := newBrowser(t, g.URL, nil)
	ui := b.mustLogin("ana", "password-ana")
	resp, page := b.do("GET", "/app/index.html", nil, map[string]string{"Sec-Fetch-Mode": "navigate"})
	if resp.StatusCode != 200 || csrfOf(t, page) != csrfOf(t, ui) || !strings.Contains(page, `<head><meta name="csrf-token"`) ||
		!strings.Contains(page, `<script src="/ui/assets/csrf.js"></script><title>app</title>`) {
		t.Fatalf("the page opened with the session: %d\n%s", resp.StatusCode, page)
	}
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("ETag") != "" || resp.ContentLength != int64(len(page)) {
		t.Errorf("headers of the page opened with the session: %v", resp.Header)
	}
	if resp, js := b.do("GET", "/ui/assets/csrf.js", nil, nil); resp.StatusCode != 200 || !strings.Contains(js, "X-CSRF-Token") ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("the script: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, body := g.do("GET", "/app/index.html", key, ""); resp.StatusCode != 200 || string(body) != app || resp.Header.Get("ETag") != `"v1"` {
		t.Errorf("the page opened with an API key: %d %v\n%s", resp.StatusCode, resp.Header, body)
	}
}

// TestGuessedSessionCookiesAreBanned: session cookies that name no
// session (well-formed guesses, garbage) on a cookie route are wrong
// credentials, not absent ones: they count toward the IP ban as bad
// bearer tokens do, page loads included, so cookies cannot be guessed
// without it.
func TestGuessedSessionCookiesAreBanned(t *testing.T) {
	up := newUpstream(t)
	g := setup(t, cookieRouteYAML(up.URL)+"protection: {ban_threshold: 5, ban_window: 1m, ban_duration: 10m, login_rate_limit: 1000/m, ip_rate_limit: 1000/s}\n")
	key := g.userKey("ana", "")
	guesses := []string{
		token.RefreshPrefix + strings.Repeat("A", 43), // the shape of a real one
		token.RefreshPrefix + strings.Repeat("B", 43),
		"garbage",
		"%00",
		token.RefreshPrefix,
		token.RefreshPrefix + strings.Repeat("Q", 43),
	}
	for i, guess := range guesses {
		req, _ := http.NewRequest("GET", g.URL+"/app/index.html", nil)
		req.Header.Set("Cookie", "tollgate_session="+guess)
		if i%2 == 0 {
			req.Header.Set("Sec-Fetch-Mode", "navigate")
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d (%q): %d, want 401", i, guess, resp.StatusCode)
		}
	}
	if resp, _ := g.do("GET", "/app/x", key, ""); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after 6 guessed cookies (threshold 5) a valid key: %d, want 429 (banned)", resp.StatusCode)
	}
}

// TestGuessedSessionCookiesOnTheDashboardAreBanned: guessed session
// cookies on the dashboard's pages (GET /ui/, which sends a browser
// without a session to /login) get 401 and count toward the IP ban; the
// page says to log in again and the browser is told to drop the cookie.
func TestGuessedSessionCookiesOnTheDashboardAreBanned(t *testing.T) {
	up := newUpstream(t)
	g := setup(t, cookieRouteYAML(up.URL)+"protection: {ban_threshold: 5, ban_window: 1m, ban_duration: 10m, login_rate_limit: 1000/m, ip_rate_limit: 1000/s}\n")
	key := g.userKey("ana", "")
	for i := range 6 {
		req, _ := http.NewRequest("GET", g.URL+"/ui/", nil)
		req.Header.Set("Cookie", "tollgate_session="+token.RefreshPrefix+strings.Repeat(string(rune('A'+i)), 42)+"A")
		req.Header.Set("Sec-Fetch-Mode", "navigate")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if i == 5 {
			break // the address is banned by now
		}
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `href="/login"`) ||
			!strings.Contains(resp.Header.Get("Set-Cookie"), "tollgate_session=;") {
			t.Fatalf("guess %d: %d, Set-Cookie %q\n%s", i, resp.StatusCode, resp.Header.Get("Set-Cookie"), body)
		}
	}
	if resp, _ := g.do("GET", "/app/x", key, ""); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after 6 guessed cookies on /ui/ (threshold 5) a valid key: %d, want 429 (banned)", resp.StatusCode)
	}
}

// TestCookieRoutePageOfAnAppThatPrefersBrotli: a browser opening an
// app's page with the session accepts gzip, deflate, br and zstd; the app
// answers in the best encoding asked for. tollgate asks it for gzip only
// on a page load, so the page still gets the CSRF token (sent decoded).
func TestCookieRoutePageOfAnAppThatPrefersBrotli(t *testing.T) {
	const app = `<!doctype html><html><head><title>app</title></head><body>hi</body></html>`
	up := newUpstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		switch ae := r.Header.Get("Accept-Encoding"); {
		case strings.Contains(ae, "br"):
			w.Header().Set("Content-Encoding", "br")
			_, _ = w.Write([]byte("\x1b\x44\x00\xf8brotli bytes"))
		case strings.Contains(ae, "gzip"):
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = zw.Write([]byte(app))
			_ = zw.Close()
		default:
			_, _ = w.Write([]byte(app))
		}
	})
	g := setup(t, cookieRouteYAML(up.URL))
	g.userKey("ana", "")
	b := newBrowser(t, g.URL, nil)
	b.mustLogin("ana", "password-ana")
	resp, page := b.do("GET", "/app/index.html", nil, map[string]string{"Sec-Fetch-Mode": "navigate", "Accept-Encoding": "gzip, deflate, br, zstd"})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || !strings.Contains(page, `<meta name="csrf-token"`) {
		t.Fatalf("the page opened with the session: %d %q\n%q", resp.StatusCode, resp.Header.Get("Content-Encoding"), page)
	}
}

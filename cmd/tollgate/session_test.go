package main

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// browser is an HTTP client that keeps cookies and does not follow
// redirects, so a test sees each step a browser takes.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string, tlsConf *tls.Config) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if tlsConf != nil {
		tlsConf = tlsConf.Clone() // the transport writes its ALPN list into it
	}
	tr := &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{t: t, base: base, c: &http.Client{
		Jar: jar, Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// do sends a request with headers (Origin is the gateway's unless set).
func (b *browser) do(method, path string, form url.Values, hdr map[string]string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	target := path
	if strings.HasPrefix(path, "/") {
		target = b.base + path
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method != "GET" {
		req.Header.Set("Origin", b.base)
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp, string(out)
}

var metaCSRF = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// csrfOf returns the CSRF token a page carries.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := metaCSRF.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("page has no csrf-token meta:\n%s", page)
	}
	return m[1]
}

// loginForm loads /login and posts the form; it returns the answer.
func (b *browser) loginForm(user, password string) (*http.Response, string) {
	b.t.Helper()
	resp, page := b.do("GET", "/login?next=/ui/", nil, nil)
	if resp.StatusCode != 200 {
		b.t.Fatalf("GET /login: %d", resp.StatusCode)
	}
	return b.do("POST", "/login", url.Values{"username": {user}, "password": {password}, "csrf_token": {csrfOf(b.t, page)}, "next": {"/ui/"}}, nil)
}

// mustLogin logs in through the form and returns the /ui/ page.
func (b *browser) mustLogin(user, password string) string {
	b.t.Helper()
	resp, body := b.loginForm(user, password)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		b.t.Fatalf("login %s: %d %s, want 303 to /ui/\n%s", user, resp.StatusCode, resp.Header.Get("Location"), body)
	}
	resp, page := b.do("GET", "/ui/", nil, nil)
	if resp.StatusCode != 200 {
		b.t.Fatalf("GET /ui/ after login: %d %s", resp.StatusCode, page)
	}
	return page
}

func (b *browser) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// setCookie finds the Set-Cookie line of name in resp.
func setCookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func cookieRouteYAML(up string) string {
	return `routes:
  - name: app
    path: /app/
    type: http
    cookie_auth: true
    upstreams: [` + up + `]
  - name: api
    path: /api/
    type: http
    upstreams: [` + up + `]
`
}

// TestBrowserSession walks a browser through the login form, a page and
// cookie-authenticated calls, the CSRF refusals, and logout.
func TestBrowserSession(t *testing.T) {
	up := newUpstream(t)
	g := setup(t, cookieRouteYAML(up.URL))
	g.mustCLI("user", "add", "ana", "--password", "ana-password", "--tenant", "acme", "--role", "user")
	b := newBrowser(t, g.URL, nil)

	t.Run("login page", func(t *testing.T) {
		resp, page := b.do("GET", "/login", nil, nil)
		for _, want := range []string{`name="username"`, `name="password"`, `type="password"`, `<label for="username">`, `<meta name="csrf-token"`, `lang="en"`} {
			if !strings.Contains(page, want) {
				t.Errorf("login page lacks %s", want)
			}
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("login page headers %v", resp.Header)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		resp, page := b.loginForm("ana", "wrong-password")
		if resp.StatusCode != 401 || !strings.Contains(page, "Invalid username or password") || setCookie(resp, "tollgate_session") != nil {
			t.Fatalf("wrong password: %d, session cookie %v\n%s", resp.StatusCode, setCookie(resp, "tollgate_session"), page)
		}
	})
	t.Run("login posted from another site", func(t *testing.T) {
		_, page := b.do("GET", "/login", nil, nil)
		form := url.Values{"username": {"ana"}, "password": {"ana-password"}, "csrf_token": {csrfOf(t, page)}}
		resp, _ := b.do("POST", "/login", form, map[string]string{"Origin": "http://evil.example"})
		if resp.StatusCode != 403 || setCookie(resp, "tollgate_session") != nil {
			t.Fatalf("cross-origin login: %d, cookie %v", resp.StatusCode, setCookie(resp, "tollgate_session"))
		}
		resp, _ = b.do("POST", "/login", url.Values{"username": {"ana"}, "password": {"ana-password"}}, nil)
		if resp.StatusCode != 403 || setCookie(resp, "tollgate_session") != nil {
			t.Fatalf("login without its CSRF token: %d", resp.StatusCode)
		}
	})

	resp, _ := b.loginForm("ana", "ana-password")
	sc := setCookie(resp, "tollgate_session")
	if resp.StatusCode != http.StatusSeeOther || sc == nil {
		t.Fatalf("login: %d, cookie %v", resp.StatusCode, sc)
	}
	if !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Secure || sc.Path != "/" {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Lax, not Secure on plain HTTP, Path=/", sc)
	}
	_, page := b.do("GET", "/ui/", nil, nil)
	if !strings.Contains(page, `<strong id="user">ana</strong>`) || !strings.Contains(page, "acme") {
		t.Fatalf("/ui/ does not show ana of acme:\n%s", page)
	}
	csrf := csrfOf(t, page)

	t.Run("cookie route", func(t *testing.T) {
		resp, body := b.do("GET", "/app/x", nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET on a cookie route: %d %s", resp.StatusCode, body)
		}
		hdr := *up.last.Load()
		if hdr.Get("X-User-Role") != "user" || hdr.Get("X-Tenant-ID") != "acme" {
			t.Errorf("upstream identity headers %v", hdr)
		}
		if strings.Contains(hdr.Get("Cookie"), "tollgate_session") {
			t.Errorf("the session cookie reached the upstream: %q", hdr.Get("Cookie"))
		}
		if resp, body := b.do("POST", "/app/x", url.Values{"a": {"1"}}, nil); resp.StatusCode != 403 {
			t.Errorf("POST without the CSRF token: %d %s, want 403", resp.StatusCode, body)
		}
		if resp, _ := b.do("POST", "/app/x", url.Values{"a": {"1"}}, map[string]string{"X-CSRF-Token": csrf, "Origin": "http://evil.example"}); resp.StatusCode != 403 {
			t.Errorf("POST from another origin with the token: %d, want 403", resp.StatusCode)
		}
		if resp, _ := b.do("POST", "/app/x", url.Values{"a": {"1"}}, map[string]string{"X-CSRF-Token": csrf, "Origin": ""}); resp.StatusCode != 403 {
			t.Errorf("POST with neither Origin nor Referer: %d, want 403", resp.StatusCode)
		}
		if resp, _ := b.do("POST", "/app/x", url.Values{"a": {"1"}}, map[string]string{"X-CSRF-Token": "x" + csrf}); resp.StatusCode != 403 {
			t.Errorf("POST with a wrong token: %d, want 403", resp.StatusCode)
		}
		if resp, body := b.do("POST", "/app/x", url.Values{"a": {"1"}}, map[string]string{"X-CSRF-Token": csrf}); resp.StatusCode != 200 {
			t.Errorf("POST with the token from the same origin: %d %s", resp.StatusCode, body)
		}
		if resp, body := b.do("POST", "/app/x", url.Values{"a": {"1"}}, map[string]string{"X-CSRF-Token": csrf, "Origin": "", "Referer": g.URL + "/ui/"}); resp.StatusCode != 200 {
			t.Errorf("POST with the token and a same-origin Referer: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("websocket from another origin", func(t *testing.T) {
		ws := map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": "http://evil.example"}
		if resp, _ := b.do("GET", "/app/ws", nil, ws); resp.StatusCode != 403 {
			t.Errorf("websocket upgrade with the cookie from another origin: %d, want 403", resp.StatusCode)
		}
		before := up.hits.Load()
		ws["Origin"] = g.URL
		b.do("GET", "/app/ws", nil, ws)
		if up.hits.Load() != before+1 {
			t.Errorf("a same-origin websocket upgrade did not reach the upstream")
		}
	})
	t.Run("other routes keep bearer tokens only", func(t *testing.T) {
		if resp, _ := b.do("GET", "/api/x", nil, nil); resp.StatusCode != 401 {
			t.Errorf("cookie on a route without cookie_auth: %d, want 401", resp.StatusCode)
		}
		if resp, _ := b.do("GET", "/v1/me", nil, nil); resp.StatusCode != 401 {
			t.Errorf("cookie on /v1/me: %d, want 401", resp.StatusCode)
		}
	})
	t.Run("logout", func(t *testing.T) {
		if resp, _ := b.do("POST", "/logout", url.Values{}, nil); resp.StatusCode != 403 {
			t.Errorf("logout without the CSRF token: %d, want 403", resp.StatusCode)
		}
		if resp, _ := b.do("GET", "/ui/", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("a refused logout ended the session: %d", resp.StatusCode)
		}
		old := b.cookie("tollgate_session")
		resp, _ := b.do("POST", "/logout", url.Values{"csrf_token": {csrf}}, nil)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
			t.Fatalf("logout: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		if resp, _ := b.do("GET", "/ui/", nil, nil); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
			t.Errorf("/ui/ after logout: %d %s, want a redirect to /login", resp.StatusCode, resp.Header.Get("Location"))
		}
		// The cookie of the ended session, replayed, is dead too.
		b.c.Jar.SetCookies(mustURL(t, g.URL), []*http.Cookie{old})
		if resp, _ := b.do("GET", "/app/x", nil, nil); resp.StatusCode != 401 {
			t.Errorf("the logged-out session's cookie replayed: %d, want 401", resp.StatusCode)
		}
	})
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestSessionEndsOnRevocation ends sessions the three ways an admin can:
// revoking the session's family, revoking the user, disabling the user;
// each takes effect within a second.
func TestSessionEndsOnRevocation(t *testing.T) {
	up := newUpstream(t)
	g := setup(t, cookieRouteYAML(up.URL))
	g.mustCLI("user", "add", "ana", "--password", "ana-password", "--tenant", "acme", "--role", "user")
	admin := g.login("admin", adminPassword).AccessToken
	var ana struct {
		ID string `json:"user_id"`
	}
	_, body := g.do("GET", "/v1/me", g.login("ana", "ana-password").AccessToken, "")
	if err := json.Unmarshal(body, &ana); err != nil || ana.ID == "" {
		t.Fatalf("me: %s", body)
	}
	endsWithin := func(t *testing.T, b *browser) {
		t.Helper()
		if !eventually(time.Second, func() bool { r, _ := b.do("GET", "/app/x", nil, nil); return r.StatusCode == 401 }) {
			t.Fatal("the session still works a second later")
		}
		if resp, _ := b.do("GET", "/ui/", nil, nil); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("/ui/ of an ended session: %d, want a redirect to /login", resp.StatusCode)
		}
	}
	t.Run("family", func(t *testing.T) {
		b := newBrowser(t, g.URL, nil)
		b.mustLogin("ana", "ana-password")
		other := newBrowser(t, g.URL, nil)
		other.mustLogin("ana", "ana-password")
		resp, _ := g.form("/oauth/revoke", url.Values{"token": {b.cookie("tollgate_session").Value}})
		if resp.StatusCode != 200 {
			t.Fatalf("revoke: %d", resp.StatusCode)
		}
		endsWithin(t, b)
		if resp, _ := other.do("GET", "/app/x", nil, nil); resp.StatusCode != 200 {
			t.Errorf("another session of the same user ended too: %d", resp.StatusCode)
		}
	})
	t.Run("user revoked", func(t *testing.T) {
		b := newBrowser(t, g.URL, nil)
		b.mustLogin("ana", "ana-password")
		if resp, body := g.do("POST", "/admin/v1/users/"+ana.ID+"/revoke", admin, ""); resp.StatusCode/100 != 2 {
			t.Fatalf("revoke user: %d %s", resp.StatusCode, body)
		}
		endsWithin(t, b)
	})
	t.Run("user disabled", func(t *testing.T) {
		b := newBrowser(t, g.URL, nil)
		b.mustLogin("ana", "ana-password")
		if resp, body := g.do("POST", "/admin/v1/users/"+ana.ID+"/disable", admin, ""); resp.StatusCode/100 != 2 {
			t.Fatalf("disable user: %d %s", resp.StatusCode, body)
		}
		endsWithin(t, b)
		if resp, _ := b.loginForm("ana", "ana-password"); resp.StatusCode != 401 {
			t.Errorf("a disabled user logged in: %d", resp.StatusCode)
		}
	})
}

// TestLoginFormBacksOff shows the form has /auth/login's protection:
// failed attempts make the account back off (429 with Retry-After) and
// the per-address login rate limit counts posts, not page loads.
func TestLoginFormBacksOff(t *testing.T) {
	g := setup(t, "protection: {login_rate_limit: 5/m, ip_rate_limit: 1000/s}\n")
	g.mustCLI("user", "add", "ana", "--password", "ana-password", "--tenant", "acme", "--role", "user")
	b := newBrowser(t, g.URL, nil)
	for range 8 {
		if resp, _ := b.do("GET", "/login", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("GET /login counted as an attempt: %d", resp.StatusCode)
		}
	}
	var last *http.Response
	for range 6 {
		last, _ = b.loginForm("ana", "wrong-password")
		if last.StatusCode == 429 {
			break
		}
	}
	if last.StatusCode != 429 || last.Header.Get("Retry-After") == "" {
		t.Fatalf("after failed logins: %d Retry-After %q, want 429 with Retry-After", last.StatusCode, last.Header.Get("Retry-After"))
	}
	if resp, _ := b.loginForm("ana", "ana-password"); resp.StatusCode == http.StatusSeeOther {
		t.Error("the right password got in while backing off")
	}
}

// TestClusterSession shows a browser session as one across two replicas
// sharing PostgreSQL and Redis: a login on one works on the other, and
// logging out or disabling the user on one ends it on the other within a
// second.
func TestClusterSession(t *testing.T) {
	up := newUpstream(t)
	a, b := setupCluster(t, cookieRouteYAML(up.URL))
	a.mustCLI("user", "add", "ana", "--password", "ana-password", "--tenant", "acme", "--role", "user")
	// Cookies are not bound to ports: one jar serves both replicas on
	// 127.0.0.1, as one browser behind a balancer.
	onA := newBrowser(t, a.URL, nil)
	onB := &browser{t: t, base: b.URL, c: onA.c}
	page := onA.mustLogin("ana", "ana-password")
	if resp, body := onB.do("GET", "/app/x", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("session of replica a refused by b: %d %s", resp.StatusCode, body)
	}
	old := onA.cookie("tollgate_session")
	onA.do("POST", "/logout", url.Values{"csrf_token": {csrfOf(t, page)}}, nil)
	// The logout cleared the jar's cookie; put the old one back to see
	// that b refuses it, not merely that the browser forgot it.
	onA.c.Jar.SetCookies(mustURL(t, b.URL), []*http.Cookie{old})
	if !eventually(time.Second, func() bool { r, _ := onB.do("GET", "/app/x", nil, nil); return r.StatusCode == 401 }) {
		t.Fatal("logged out on a, still accepted by b after 1 s")
	}

	second := newBrowser(t, b.URL, nil)
	second.mustLogin("ana", "ana-password")
	admin := a.login("admin", adminPassword).AccessToken
	_, body := a.do("GET", "/admin/v1/users", admin, "")
	var list struct{ Users []struct{ ID, Name string } }
	_ = json.Unmarshal(body, &list)
	var id string
	for _, u := range list.Users {
		if u.Name == "ana" {
			id = u.ID
		}
	}
	if r, _ := a.do("POST", "/admin/v1/users/"+id+"/disable", admin, ""); r.StatusCode != 200 {
		t.Fatalf("disable: %d", r.StatusCode)
	}
	if !eventually(time.Second, func() bool { r, _ := second.do("GET", "/app/x", nil, nil); return r.StatusCode == 401 }) {
		t.Fatal("user disabled on a, session on b still accepted after 1 s")
	}
}

// TestPasswordLoginOff hides the form and refuses a posted one when
// login.password is false.
func TestPasswordLoginOff(t *testing.T) {
	g := setup(t, "login: {password: false}\n")
	b := newBrowser(t, g.URL, nil)
	_, page := b.do("GET", "/login", nil, nil)
	if strings.Contains(page, `name="password"`) {
		t.Error("the login page shows the password form")
	}
	if resp, _ := b.do("POST", "/login", url.Values{"username": {"admin"}, "password": {adminPassword}, "csrf_token": {csrfOf(t, page)}}, nil); resp.StatusCode != 403 || setCookie(resp, "tollgate_session") != nil {
		t.Errorf("password login with login.password false: %d", resp.StatusCode)
	}
}

// TestSessionRenewal keeps a session in use alive past its first token's
// idle time: a page load after half of it rotates the token into the
// cookie (concurrent loads share one rotation and the session lives on),
// the old token serves a moment longer and dies with its idle time,
// while the new one goes on.
func TestSessionRenewal(t *testing.T) {
	up := newUpstream(t)
	g := setup(t, "tokens: {refresh_idle_ttl: 4s}\n"+cookieRouteYAML(up.URL))
	g.mustCLI("user", "add", "ana", "--password", "ana-password", "--tenant", "acme", "--role", "user")
	b := newBrowser(t, g.URL, nil)
	b.mustLogin("ana", "ana-password")
	old := b.cookie("tollgate_session").Value
	with := func(path, cookie string) *http.Response {
		req, _ := http.NewRequest("GET", g.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: "tollgate_session", Value: cookie})
		resp, err := b.c.Transport.RoundTrip(req)
		if err != nil {
			t.Error(err) // may run off the test's goroutine
			return &http.Response{Body: http.NoBody}
		}
		resp.Body.Close()
		return resp
	}
	var renewed string
	if !eventually(5*time.Second, func() bool {
		got := make(chan *http.Response, 2)
		for range 2 {
			go func() { got <- with("/ui/", old) }()
		}
		r1, r2 := <-got, <-got
		if r1.StatusCode != 200 || r2.StatusCode != 200 {
			t.Fatalf("page loads with the session: %d, %d", r1.StatusCode, r2.StatusCode)
		}
		c1, c2 := setCookie(r1, "tollgate_session"), setCookie(r2, "tollgate_session")
		if c1 != nil && c2 != nil && c1.Value != c2.Value {
			t.Fatalf("two concurrent page loads rotated the token twice")
		}
		for _, c := range []*http.Cookie{c1, c2} {
			if c != nil {
				renewed = c.Value
			}
		}
		return renewed != ""
	}) {
		t.Fatal("no page load renewed the session")
	}
	if renewed == old {
		t.Fatal("the renewed cookie holds the old token")
	}
	if r := with("/app/x", old); r.StatusCode != 200 {
		t.Errorf("the old token right after the renewal: %d, want 200 (requests on their way)", r.StatusCode)
	}
	if !eventually(6*time.Second, func() bool { return with("/app/x", old).StatusCode == 401 }) {
		t.Fatal("the old token outlived its idle time")
	}
	if r := with("/app/x", renewed); r.StatusCode != 200 {
		t.Errorf("the renewed token after the old one's idle time: %d, want 200", r.StatusCode)
	}
}

package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/clienttest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// seen is what a server received: per request's case, its X-CSRF-Token
// and the headers a CORS preflight announced.
type seen struct {
	mu    sync.Mutex
	cases map[string][]string
}

func (s *seen) note(r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := r.URL.Query().Get("case")
	s.cases[c] = append(s.cases[c], r.Method+" token="+r.Header.Get("X-CSRF-Token")+" preflight="+r.Header.Get("Access-Control-Request-Headers"))
}

func (s *seen) get(c string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cases[c]
}

// TestCSRFScriptInChromium opens pages that SessionPage rewrote, served
// with csrf.js, in Chromium. Their own state-changing fetch and XHR calls
// to the page's origin carry the session's token — given as a string, a
// URL or a Request, and on a page whose Content-Security-Policy allows
// only a nonce. Calls to another origin never do: absolute,
// protocol-relative ("//host:port/…"), or relative on a page whose
// <base href> is on that other origin; not even in the preflight's list
// of headers.
func TestCSRFScriptInChromium(t *testing.T) {
	clients := clienttest.Node(t)
	chromium := clienttest.Chromium(t)
	script, err := files.ReadFile("assets/csrf.js")
	if err != nil {
		t.Fatal(err)
	}
	const sessionID = "fam_csrf"
	token := auth.CSRFToken(sessionID)
	same, other := &seen{cases: map[string][]string{}}, &seen{cases: map[string][]string{}}

	otherSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other.note(r)
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Methods", "*")
		w.Header().Set("Access-Control-Allow-Headers", "*")
	}))
	t.Cleanup(otherSrv.Close)
	otherHost := strings.TrimPrefix(otherSrv.URL, "http://")

	done := `.then(() => { document.title = "done"; }, (e) => { document.title = "failed: " + e; })`
	xhr := `const xhr = (m, u) => new Promise((ok) => { const x = new XMLHttpRequest(); x.open(m, u); x.onloadend = ok; x.send("b"); });`
	pages := map[string]struct{ csp, head, script string }{
		"plain": {script: xhr + `Promise.allSettled([
			fetch("/echo?case=string", {method: "POST", body: "b"}),
			fetch(new URL("/echo?case=url", location.href), {method: "PUT"}),
			fetch(new Request("/echo?case=request", {method: "POST", body: "b"})),
			fetch(new Request("/echo?case=request-init"), {method: "DELETE"}),
			fetch("/echo?case=get"),
			xhr("POST", "/echo?case=xhr"),
			fetch("//` + otherHost + `/x?case=protocol-relative", {method: "POST", body: "b"}),
			fetch("` + otherSrv.URL + `/x?case=absolute", {method: "POST", body: "b"}),
			fetch(new Request("` + otherSrv.URL + `/x?case=other-request", {method: "POST", body: "b"})),
			xhr("POST", "` + otherSrv.URL + `/x?case=other-xhr"),
		])` + done},
		"base": {head: `<base href="` + otherSrv.URL + `/">`, script: xhr + `Promise.allSettled([
			fetch("x?case=base", {method: "POST", body: "b"}),
			xhr("POST", "x?case=base-xhr"),
		])` + done},
		"nonce": {csp: "script-src 'nonce-n0nce' 'strict-dynamic'; connect-src *", script: `fetch("/echo?case=nonce", {method: "POST", body: "b"})` + done},
	}
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == CSRFScript:
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = w.Write(script)
		case r.URL.Path == "/echo":
			same.note(r)
		case strings.HasPrefix(r.URL.Path, "/page/"):
			pg, ok := pages[strings.TrimPrefix(r.URL.Path, "/page/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			body := `<!doctype html><html><head>` + pg.head + `<title>page</title></head><body><script nonce="n0nce">` + pg.script + `</script></body></html>`
			res := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/html"}}, Body: io.NopCloser(strings.NewReader(body))}
			if pg.csp != "" {
				res.Header.Set("Content-Security-Policy", pg.csp)
			}
			SessionPage(&tollgate.Principal{UserID: "usr_1", SessionID: sessionID, ViaSession: true}, res)
			for k, v := range res.Header {
				w.Header()[k] = v
			}
			_, _ = io.Copy(w, res.Body)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(gw.Close)

	raw := clients.Run(t, 2*time.Minute, "csrf-pages.mjs", chromium, gw.URL+"/page/plain", gw.URL+"/page/base", gw.URL+"/page/nonce")
	var opened []struct {
		URL, Title string
		Errors     []string
	}
	if err := json.Unmarshal(raw, &opened); err != nil {
		t.Fatalf("browser output %s: %v", raw, err)
	}
	for _, p := range opened {
		if p.Title != "done" {
			t.Errorf("%s: title %q, errors %q", p.URL, p.Title, p.Errors)
		}
	}
	for c, method := range map[string]string{"string": "POST", "url": "PUT", "request": "POST", "request-init": "DELETE", "xhr": "POST", "nonce": "POST"} {
		want := method + " token=" + token + " preflight="
		if got := same.get(c); len(got) != 1 || got[0] != want {
			t.Errorf("same-origin call %q: %q, want [%q]", c, got, want)
		}
	}
	if got := same.get("get"); len(got) != 1 || got[0] != "GET token= preflight=" {
		t.Errorf("a GET: %q, want no token", got)
	}
	for _, c := range []string{"protocol-relative", "absolute", "other-request", "other-xhr", "base", "base-xhr"} {
		got := other.get(c)
		if len(got) == 0 {
			t.Errorf("the other origin never saw call %q", c)
		}
		for _, g := range got {
			if strings.Contains(g, token) || strings.Contains(strings.ToLower(g), "x-csrf-token") {
				t.Errorf("call %q reached the other origin with the token: %q", c, g)
			}
		}
	}
}

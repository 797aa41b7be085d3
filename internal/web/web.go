// Package web serves the browser pages under /ui/, behind the session
// cookie of internal/auth.
package web

import (
	"html/template"
	"log/slog"
	"net/http"

	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// Options configure the pages. Auth and Store are required.
type Options struct {
	Auth   *auth.Service
	Store  tollgate.Store
	Logger *slog.Logger
}

// UI serves /ui/.
type UI struct{ opts Options }

// New returns the pages.
func New(opts Options) *UI {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &UI{opts: opts}
}

// Register mounts the pages on mux.
func (u *UI) Register(mux httpx.Mux) {
	mux.Handle("GET /ui/{$}", u.opts.Auth.RequireSession(http.HandlerFunc(u.home)))
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
}

var homeTemplate = template.Must(template.New("home").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{{.CSRF}}">
<title>tollgate</title>
<style>
body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}
dt{font-weight:600}
button{padding:.5rem 1rem;font-size:1rem}
:focus-visible{outline:3px solid #e37400;outline-offset:2px}
</style>
</head>
<body>
<header>
<p>Logged in as <strong id="user">{{.Name}}</strong></p>
<form method="post" action="/logout"><input type="hidden" name="csrf_token" value="{{.CSRF}}"><button type="submit">Log out</button></form>
</header>
<main>
<h1>tollgate</h1>
<dl>
<dt>Tenant</dt><dd id="tenant">{{.Tenant}}</dd>
<dt>Role</dt><dd id="role">{{.Role}}</dd>
<dt>Plan</dt><dd id="plan">{{.Plan}}</dd>
</dl>
</main>
</body>
</html>
`))

// home is the landing page: who is logged in.
func (u *UI) home(w http.ResponseWriter, r *http.Request) {
	p := auth.PrincipalFrom(r.Context())
	name := p.UserID
	if user, err := u.opts.Store.Users().User(r.Context(), p.UserID); err == nil {
		name = user.Name
	}
	auth.PageHeaders(w.Header())
	_ = homeTemplate.Execute(w, map[string]string{
		"CSRF": auth.CSRFToken(p.SessionID), "Name": name, "Tenant": p.TenantID, "Role": p.Role, "Plan": p.Plan,
	})
}

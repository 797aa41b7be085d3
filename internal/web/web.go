// Package web serves the browser pages under /ui/, behind the session
// cookie of internal/auth: the user's dashboard and, for role admin, the
// admin pages. The pages are server-rendered; small scripts fill them from
// the JSON APIs, called through /ui/api/ with the session cookie and the
// CSRF token of the page. Every asset is embedded; the pages load nothing
// from any other host.
package web

import (
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

//go:embed assets templates
var files embed.FS

// Options configure the pages. Auth, Store and API are required.
type Options struct {
	Auth  *auth.Service
	Store tollgate.Store
	// API serves the JSON APIs the pages call (the gateway's own mux);
	// /ui/api/P is served as P for the paths apiAllowed lets through.
	API http.Handler
	// RevokeSelf ends every session and token of r's caller (audited) and
	// returns the caller's user id; the page then starts a new session
	// for itself, so "end other sessions" keeps the one asking.
	RevokeSelf func(r *http.Request) (string, error)
	Logger     *slog.Logger
}

// UI serves /ui/.
type UI struct {
	opts   Options
	pages  *template.Template
	assets http.Handler
}

// New returns the pages.
func New(opts Options) *UI {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	pages := template.Must(template.New("").Funcs(template.FuncMap{
		"t": func(l lang, key string) string { return l.text(key) },
	}).ParseFS(files, "templates/*.html"))
	sub, _ := fs.Sub(files, "assets")
	return &UI{opts: opts, pages: pages, assets: http.StripPrefix("/ui/assets/", http.FileServerFS(sub))}
}

// Register mounts the pages on mux.
func (u *UI) Register(mux httpx.Mux) {
	page := func(h http.HandlerFunc) http.Handler { return u.opts.Auth.RequireSession(h) }
	mux.Handle("GET /ui/{$}", page(u.home))
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	mux.Handle("GET /ui/admin/{$}", http.RedirectHandler("/ui/admin/users", http.StatusSeeOther))
	mux.Handle("GET /ui/admin/{section}", page(u.admin))
	mux.Handle("GET /ui/assets/", http.HandlerFunc(u.asset))
	mux.Handle("/ui/api/", u.opts.Auth.RequireSession(http.HandlerFunc(u.api)))
	if u.opts.RevokeSelf != nil {
		mux.Handle("POST /ui/sessions/end-others", u.opts.Auth.RequireSession(httpx.Handle(u.opts.Logger, u.endOtherSessions)))
	}
}

// endOtherSessions ends every session of the caller but the one asking,
// which continues with a new cookie (and so a new CSRF token: the page
// reloads).
func (u *UI) endOtherSessions(w http.ResponseWriter, r *http.Request) error {
	uid, err := u.opts.RevokeSelf(r)
	if err != nil {
		return err
	}
	if err := u.opts.Auth.StartSessionFor(w, r, uid); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"ended_other_sessions": true})
	return nil
}

// adminSections are the admin pages, in the order of their menu.
var adminSections = []string{"users", "tenants", "budgets", "bans", "usage", "queues", "audit"}

// view is what every page template gets.
type view struct {
	Lang    lang
	CSRF    string
	Name    string
	Tenant  string
	Role    string
	Plan    string
	Admin   bool
	Section string            // the admin section shown, "" on the user's page
	Menu    []string          // admin sections
	Path    string            // the page's path, for the language links
	Strings map[string]string // the page's translations, for its script
}

func (u *UI) view(w http.ResponseWriter, r *http.Request) view {
	p := auth.PrincipalFrom(r.Context())
	name := p.UserID
	if user, err := u.opts.Store.Users().User(r.Context(), p.UserID); err == nil {
		name = user.Name
	}
	l := chooseLang(w, r)
	return view{Lang: l, CSRF: auth.CSRFToken(p.SessionID), Name: name, Tenant: p.TenantID, Role: p.Role,
		Plan: p.Plan, Admin: p.Role == "admin", Menu: adminSections, Path: r.URL.Path, Strings: l.scriptStrings()}
}

// home is the user's dashboard.
func (u *UI) home(w http.ResponseWriter, r *http.Request) {
	u.render(w, http.StatusOK, "home.html", u.view(w, r))
}

// admin is one admin page; other roles get 403.
func (u *UI) admin(w http.ResponseWriter, r *http.Request) {
	v := u.view(w, r)
	section := r.PathValue("section")
	if !slices.Contains(adminSections, section) {
		u.render(w, http.StatusNotFound, "error.html", errorView{view: v, Message: v.Lang.text("not_found")})
		return
	}
	if !v.Admin {
		u.render(w, http.StatusForbidden, "error.html", errorView{view: v, Message: v.Lang.text("admin_only")})
		return
	}
	v.Section = section
	u.render(w, http.StatusOK, "admin.html", v)
}

type errorView struct {
	view
	Message string
}

func (u *UI) render(w http.ResponseWriter, status int, name string, v any) {
	auth.PageHeaders(w.Header())
	w.Header().Add("Vary", "Accept-Language, Cookie")
	w.WriteHeader(status)
	if err := u.pages.ExecuteTemplate(w, name, v); err != nil {
		u.opts.Logger.Error("render page", "page", name, "err", err)
	}
}

// asset serves an embedded file; they change only with the binary.
func (u *UI) asset(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	u.assets.ServeHTTP(w, r)
}

// apiAllowed reports whether the pages may call path through /ui/api/:
// the caller's own endpoints, the predictions API and the admin API
// (which checks the role itself). Data-plane routes are never reachable
// with the cookie this way.
func apiAllowed(path string) bool {
	switch path {
	case "/v1/me", "/v1/me/usage", "/v1/me/keys", "/v1/me/sessions", "/v1/me/revoke", "/v1/webhooks/default/secret", "/v1/predictions":
		return true
	}
	return strings.HasPrefix(path, "/v1/me/keys/") || strings.HasPrefix(path, "/v1/me/sessions/") || strings.HasPrefix(path, "/v1/predictions/") ||
		strings.HasPrefix(path, "/admin/v1/")
}

// api serves /ui/api/P as P, authenticated by the session RequireSession
// checked (and CSRF-checked when it changes state).
func (u *UI) api(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/ui/api")
	if !apiAllowed(path) || strings.Contains(path, "..") {
		httpx.WriteError(w, r, u.opts.Logger, tollgate.Errorf(tollgate.ENotFound, "no such dashboard endpoint"))
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = path, ""
	r2.RequestURI = ""
	u.opts.API.ServeHTTP(w, r2)
}

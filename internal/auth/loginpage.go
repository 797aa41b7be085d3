package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// loginCSRFCookie holds the CSRF token of the login form itself, so a
// login cannot be forced by another site (double-submit, plus Origin).
const loginCSRFCookie = "tollgate_login_csrf"

// PageHeaders sets the headers every HTML page of the gateway carries: no
// caching, no framing by other sites, no sniffing, no scripts from
// elsewhere.
func PageHeaders(h http.Header) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self' https: http:; base-uri 'none'")
}

var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{{.CSRF}}">
<title>Log in · tollgate</title>
<style>
body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}
label{display:block;margin-top:1rem;font-weight:600}
input{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;border:1px solid #555;border-radius:4px}
button,.sso{display:block;width:100%;margin-top:1.25rem;padding:.6rem;font-size:1rem;border-radius:4px;text-align:center;box-sizing:border-box}
button{background:#0b57d0;color:#fff;border:0}
.sso{border:1px solid #0b57d0;color:#0b57d0;text-decoration:none}
:focus-visible{outline:3px solid #e37400;outline-offset:2px}
[role=alert]{background:#fde7e9;border:1px solid #b3261e;padding:.5rem;border-radius:4px}
</style>
</head>
<body>
<main>
<h1>Log in to tollgate</h1>
{{if .Error}}<p role="alert" id="login-error">{{.Error}}</p>{{end}}
{{if .Password}}
<form method="post" action="/login">
<input type="hidden" name="csrf_token" value="{{.CSRF}}">
<input type="hidden" name="next" value="{{.Next}}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required value="{{.Username}}"{{if .Error}} aria-describedby="login-error"{{end}}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button>
</form>
{{end}}
{{range .SSO}}<a class="sso" href="/login/sso/{{.Index}}?next={{$.Next}}">Sign in with {{.Name}}</a>{{end}}
</main>
</body>
</html>
`))

type loginView struct {
	CSRF, Next, Username, Error string
	Password                    bool
	SSO                         []ssoLink
}

type ssoLink struct {
	Index int
	Name  string
}

// safeNext returns next when it is a path on this gateway, else /ui/: a
// login never redirects to another site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") || !utf8.ValidString(next) || len(next) > 2048 {
		return "/ui/"
	}
	return next
}

// loginPage answers GET /login.
func (s *Service) loginPage(w http.ResponseWriter, r *http.Request) {
	s.renderLogin(w, r, http.StatusOK, loginView{Next: safeNext(r.URL.Query().Get("next"))})
}

// renderLogin writes the login page with a fresh login CSRF token.
func (s *Service) renderLogin(w http.ResponseWriter, r *http.Request, status int, v loginView) {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	v.CSRF = base64.RawURLEncoding.EncodeToString(b)
	v.Password = *s.opts.Config.Login.Password
	for i, iss := range s.sso {
		if iss != nil {
			v.SSO = append(v.SSO, ssoLink{Index: i, Name: iss.name})
		}
	}
	http.SetCookie(w, &http.Cookie{
		Name: loginCSRFCookie, Value: v.CSRF, Path: "/login", MaxAge: 3600,
		HttpOnly: true, Secure: s.secureCookies(r), SameSite: http.SameSiteLaxMode,
	})
	PageHeaders(w.Header())
	w.WriteHeader(status)
	_ = loginTemplate.Execute(w, v)
}

// loginForm answers POST /login (username, password, csrf_token, next):
// on success a session cookie and a redirect to next.
func (s *Service) loginForm(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil || !isForm(r) {
		s.renderLogin(w, r, http.StatusBadRequest, loginView{Next: "/ui/", Error: "The form could not be read; please try again."})
		return
	}
	f := r.PostForm
	v := loginView{Next: safeNext(f.Get("next")), Username: f.Get("username")}
	c, err := r.Cookie(loginCSRFCookie)
	if !s.sameOrigin(r) || err != nil || f.Get(csrfField) == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(f.Get(csrfField))) != 1 {
		v.Error = "This form expired or was sent from another site; please log in again."
		s.renderLogin(w, r, http.StatusForbidden, v)
		return
	}
	if !*s.opts.Config.Login.Password {
		v.Error = "Password login is off; use single sign-on."
		s.renderLogin(w, r, http.StatusForbidden, v)
		return
	}
	name, password := f.Get("username"), f.Get("password")
	if name == "" || password == "" || !utf8.ValidString(name) || len(name) > 256 || len(password) > 1024 {
		v.Error = "Username and password are required."
		s.renderLogin(w, r, http.StatusBadRequest, v)
		return
	}
	ev := &tollgate.AuditEvent{Action: tollgate.AuditLogin, Detail: "login form"}
	user, err := s.passwordLogin(r, name, password, ev)
	if err == nil {
		err = s.startSession(w, r, user)
	}
	s.record(r, ev, err)
	if err != nil {
		status, msg := http.StatusUnauthorized, "Invalid username or password."
		switch e := tollgate.ErrorCode(err); e {
		case tollgate.EUnauthorized:
		case tollgate.ERateLimited:
			status, msg = http.StatusTooManyRequests, "Too many attempts; please wait and try again."
			var te *tollgate.Error
			if errors.As(err, &te) && te.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(te.RetryAfter))
			}
		default:
			s.opts.Logger.ErrorContext(r.Context(), "login", "err", err)
			status, msg = http.StatusServiceUnavailable, "Logging in failed; please try again."
		}
		v.Error = msg
		s.renderLogin(w, r, status, v)
		return
	}
	http.Redirect(w, r, v.Next, http.StatusSeeOther)
}

// logout answers POST /logout: the session ends on every replica and its
// cookie is cleared. With a live session the CSRF token is required.
func (s *Service) logout(w http.ResponseWriter, r *http.Request) {
	if p, err := s.Session(r.Context(), r); err == nil {
		if err := s.checkCSRF(r, p, true); err != nil {
			httpErrorPage(w, http.StatusForbidden, "This logout was sent from another site or without its token.")
			return
		}
	}
	if err := s.endSession(w, r); err != nil {
		s.opts.Logger.ErrorContext(r.Context(), "logout", "err", err)
		httpErrorPage(w, http.StatusServiceUnavailable, "Logging out failed; please try again.")
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

var errorTemplate = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{{.Status}} · tollgate</title></head>
<body><main><h1>{{.Status}}</h1><p role="alert">{{.Message}}</p><p><a href="/login">Log in</a></p></main></body></html>
`))

// httpErrorPage writes a small HTML error page.
func httpErrorPage(w http.ResponseWriter, status int, msg string) {
	PageHeaders(w.Header())
	w.WriteHeader(status)
	_ = errorTemplate.Execute(w, map[string]any{"Status": strconv.Itoa(status) + " " + http.StatusText(status), "Message": msg})
}

package limit

import (
	"context"
	"net/http"
	"slices"
	"strconv"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

type ctxKey struct{}

// reqState is what Middleware hands on through the request's context: the
// client IP, and the response headers, so that Admit can set the
// RateLimit-* headers of the tightest limit that applied to the request.
type reqState struct {
	ip        string
	h         http.Header
	remaining int
	set       bool
}

// Canonical header names, written directly to skip canonicalising them on
// every request.
const (
	hLimit     = "Ratelimit-Limit"
	hRemaining = "Ratelimit-Remaining"
	hReset     = "Ratelimit-Reset"
)

// setHeaders writes RateLimit-Limit, -Remaining and -Reset (seconds) for d
// unless a tighter limit already set them.
func setHeaders(ctx context.Context, d tollgate.RateDecision) {
	s, _ := ctx.Value(ctxKey{}).(*reqState)
	if s == nil || d.Limit == 0 {
		return
	}
	if s.set && d.Allowed && d.Remaining > s.remaining {
		return
	}
	s.set, s.remaining = true, d.Remaining
	reset := d.Reset
	if !d.Allowed {
		reset = d.RetryAfter
	}
	s.h[hLimit] = []string{strconv.Itoa(d.Limit)}
	s.h[hRemaining] = []string{strconv.Itoa(d.Remaining)}
	s.h[hReset] = []string{strconv.Itoa(ceilSeconds(reset))}
}

// ClientIP returns the client address that Middleware determined for the
// request of ctx, or "".
func ClientIP(ctx context.Context) string {
	if s, _ := ctx.Value(ctxKey{}).(*reqState); s != nil {
		return s.ip
	}
	return ""
}

// Middleware applies what must hold before authentication: it refuses
// banned IPs, applies protection.ip_rate_limit per client IP (and
// protection.login_rate_limit too on the login paths), and counts 401
// responses against the ban threshold. An IPv6 client counts by its /64. Refusals are 429 with Retry-After
// and RateLimit-* headers. The client IP is available to later handlers
// through ClientIP(ctx).
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := l.opts.ClientIP(r)
		if b := l.opts.Bans; b != nil {
			if err := b.Check(ip); err != nil {
				l.refusals.WithLabelValues("ban").Inc()
				httpx.WriteError(w, r, l.opts.Logger, err)
				return
			}
		}
		ctx := context.WithValue(r.Context(), ctxKey{}, &reqState{ip: ip, h: w.Header()})
		login := slices.Contains(l.opts.LoginPaths, r.URL.Path)
		var keys []tollgate.RateKey
		if l.ipRate.N > 0 {
			keys = append(keys, tollgate.RateKey{Key: "rate:ip:" + clientKey(ip), Rate: l.ipRate})
		}
		if login && l.login.N > 0 {
			keys = append(keys, tollgate.RateKey{Key: "rate:login:" + clientKey(ip), Rate: l.login})
		}
		if len(keys) > 0 {
			d, err := l.fo.allow(ctx, keys)
			if err == nil {
				setHeaders(ctx, d)
				err = l.refusal(d)
			}
			if err != nil {
				httpx.WriteError(w, r, l.opts.Logger, err)
				return
			}
		}
		r = r.WithContext(ctx)
		if l.opts.Bans == nil || login {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == http.StatusUnauthorized {
			l.opts.Bans.InvalidToken(context.WithoutCancel(ctx), ip)
		}
	})
}

// statusWriter records the status of a response. Unwrap keeps Flush,
// Hijack and deadlines reachable through http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

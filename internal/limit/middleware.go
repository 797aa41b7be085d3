package limit

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// reqState is what Middleware keeps of one request: the Entry it hands to
// the data plane, and what backs it.
type reqState struct {
	e    tollgate.Entry
	keys [2]tollgate.RateKey // backs e.Deferred
	sw   statusWriter
}

// EntryHandler is a handler that takes the request's Entry with it, as the
// data plane does (to hand it to its admissions in the Call). Middleware
// passes the Entry to a next handler that is one.
type EntryHandler interface {
	ServeEntry(w http.ResponseWriter, r *http.Request, e *tollgate.Entry)
}

// Canonical header names, written directly to skip canonicalising them on
// every request.
const (
	hLimit     = "Ratelimit-Limit"
	hRemaining = "Ratelimit-Remaining"
	hReset     = "Ratelimit-Reset"
)

// setHeaders writes RateLimit-Limit, -Remaining and -Reset (seconds) for d
// into e's header unless a tighter limit already set them.
func setHeaders(e *tollgate.Entry, d tollgate.RateDecision) {
	if e == nil || e.Header == nil || d.Limit == 0 {
		return
	}
	if e.HeaderSet && d.Allowed && d.Remaining > e.Remaining {
		return
	}
	e.HeaderSet, e.Remaining = true, d.Remaining
	reset := d.Reset
	if !d.Allowed {
		reset = d.RetryAfter
	}
	v := []string{strconv.Itoa(d.Limit), strconv.Itoa(d.Remaining), strconv.Itoa(ceilSeconds(reset))}
	e.Header[hLimit], e.Header[hRemaining], e.Header[hReset] = v[0:1:1], v[1:2:2], v[2:3:3]
}

// Middleware applies what must hold before authentication: it refuses
// banned IPs, applies protection.ip_rate_limit per client IP (and
// protection.login_rate_limit too on the login paths), and counts 401
// responses against the ban threshold, but for those the data plane marks
// as carrying no credential at all (Entry.NoCredential). An IPv6 client counts by its /64.
// Refusals are 429 with Retry-After and RateLimit-* headers. A next
// handler that is an EntryHandler gets the request's Entry (its client IP,
// the per-client limits left to its admissions).
//
// So that a call costs one decision (one Redis call in cluster mode), the
// IP limit of a request that carries credentials is decided together with
// the user, tenant and route limits in Admit; when the request never gets
// there (a refused token, a built-in endpoint) it is decided after the
// handler. Either way it counts once, and an IP refused by any decision is
// refused here, before authentication, until its Retry-After.
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
		st := &reqState{e: tollgate.Entry{ClientIP: ip, Header: w.Header()}}
		ctx := r.Context()
		login := slices.Contains(l.opts.LoginPaths, r.URL.Path) || slices.Contains(l.opts.LoginPaths, r.Method+" "+r.URL.Path)
		keys := st.keys[:0]
		if l.ipRate.N > 0 {
			keys = append(keys, tollgate.RateKey{Key: "rate:ip:" + clientKey(ip), Rate: l.ipRate})
		}
		if login && l.login.N > 0 {
			keys = append(keys, tollgate.RateKey{Key: "rate:login:" + clientKey(ip), Rate: l.login})
		}
		if err := l.refused.check(clientKey(ip), l.opts.Now()); err != nil {
			l.refusals.WithLabelValues("ip").Inc()
			httpx.WriteError(w, r, l.opts.Logger, err)
			return
		}
		switch {
		case len(keys) == 0:
		case !login && r.Header.Get("Authorization") != "":
			st.e.Deferred = keys
		default:
			if err := l.decide(ctx, &st.e, keys); err != nil {
				httpx.WriteError(w, r, l.opts.Logger, err)
				return
			}
		}
		countBan := l.opts.Bans != nil && !login
		if countBan {
			sw := &st.sw
			sw.ResponseWriter = w
			w = sw
			defer func() {
				if sw.status == http.StatusUnauthorized && !st.e.NoCredential {
					l.opts.Bans.InvalidToken(context.WithoutCancel(ctx), ip)
				}
			}()
		}
		if eh, ok := next.(EntryHandler); ok {
			eh.ServeEntry(w, r, &st.e)
		} else {
			next.ServeHTTP(w, r)
		}
		if st.e.Deferred != nil && !st.e.Taken {
			// Never admitted by the data plane: count the call now, so
			// refused or built-in requests cost the IP its allowance too.
			_ = l.decide(context.WithoutCancel(ctx), &st.e, st.e.Deferred)
		}
	})
}

// decide takes one rate decision for keys, sets the RateLimit-* headers
// in e and remembers a refused IP; it returns the refusal.
func (l *Limiter) decide(ctx context.Context, e *tollgate.Entry, keys []tollgate.RateKey) error {
	d, err := l.fo.allow(ctx, keys)
	if err != nil {
		return err
	}
	setHeaders(e, d)
	l.noteIP(d)
	return l.refusal(d, keys)
}

// takeDeferred returns the per-client keys Middleware left for Admit, once.
func takeDeferred(e *tollgate.Entry) []tollgate.RateKey {
	if e == nil || e.Taken {
		return nil
	}
	e.Taken = true
	return e.Deferred
}

// noteIP remembers an IP refused by decision d, so Middleware refuses it
// before authentication until its Retry-After.
func (l *Limiter) noteIP(d tollgate.RateDecision) {
	if d.Allowed {
		return
	}
	if ip, ok := strings.CutPrefix(d.Key, "rate:ip:"); ok {
		l.refused.note(ip, l.opts.Now().Add(d.RetryAfter))
	}
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

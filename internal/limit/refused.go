package limit

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// maxRefused bounds the remembered refused IPs; past it the expired ones
// are dropped, and if none are, the oldest knowledge is forgotten (the
// shared counters still refuse those IPs at their next decision).
const maxRefused = 100_000

// refusedIPs remembers client IPs that a rate decision refused, until
// their Retry-After, so they are refused before authentication without
// another decision. The zero value is ready.
type refusedIPs struct {
	n     atomic.Int64 // entries, so the common case takes no lock
	mu    sync.Mutex
	until map[string]time.Time
}

// check returns a 429 while ip is remembered as refused.
func (r *refusedIPs) check(ip string, now time.Time) error {
	if r.n.Load() == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.until[ip]
	if !ok {
		return nil
	}
	if !now.Before(t) {
		delete(r.until, ip)
		r.n.Add(-1)
		return nil
	}
	secs := ceilSeconds(t.Sub(now))
	return &tollgate.Error{Code: tollgate.ERateLimited, Message: "rate limit exceeded (ip limit); retry later", RetryAfter: secs}
}

// note remembers ip as refused until t.
func (r *refusedIPs) note(ip string, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.until == nil {
		r.until = map[string]time.Time{}
	}
	if len(r.until) >= maxRefused {
		now := time.Now()
		for k, u := range r.until {
			if !now.Before(u) {
				delete(r.until, k)
			}
		}
		if len(r.until) >= maxRefused {
			clear(r.until)
		}
	}
	r.until[ip] = t
	r.n.Store(int64(len(r.until)))
}

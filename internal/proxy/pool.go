package proxy

import (
	"math"
	"net/url"
	"sync/atomic"
	"time"
)

// backend is one base URL of a pool, with the counters the balancer and
// health checks read.
type backend struct {
	url *url.URL

	inflight atomic.Int64
	// fails counts consecutive failures (connect errors, 5xx); at the
	// pool's threshold the upstream is skipped until downUntil.
	fails     atomic.Int32
	downUntil atomic.Int64 // unix nanoseconds
	// activeDown is set by the active health check.
	activeDown atomic.Bool
}

func (u *backend) available(now int64) bool {
	return !u.activeDown.Load() && u.downUntil.Load() <= now
}

// pool balances requests over upstreams by least outstanding requests,
// ties broken round-robin, skipping upstreams marked down.
type pool struct {
	ups       []*backend
	rr        atomic.Uint64
	threshold int32
	cooldown  time.Duration
}

// pick returns the upstream to use and counts the request on it; the
// caller must call done on it. When every upstream is down, the least
// loaded one is still tried rather than failing without trying.
func (p *pool) pick(now time.Time) *backend {
	var u *backend
	if len(p.ups) == 1 {
		u = p.ups[0]
	} else {
		ns := now.UnixNano()
		u = p.least(ns, true)
		if u == nil {
			u = p.least(ns, false)
		}
	}
	u.inflight.Add(1)
	return u
}

func (p *pool) least(now int64, healthyOnly bool) *backend {
	n := len(p.ups)
	start := int(p.rr.Add(1) % uint64(n))
	var best *backend
	bestLoad := int64(math.MaxInt64)
	for i := range n {
		u := p.ups[(start+i)%n]
		if healthyOnly && !u.available(now) {
			continue
		}
		if l := u.inflight.Load(); l < bestLoad {
			best, bestLoad = u, l
		}
	}
	return best
}

// done ends a request counted by pick.
func (u *backend) done() { u.inflight.Add(-1) }

// failure records a failed exchange; at the threshold the upstream is
// skipped for the cool-down.
func (p *pool) failure(u *backend, now time.Time) {
	if u.fails.Add(1) >= p.threshold {
		u.fails.Store(0)
		u.downUntil.Store(now.Add(p.cooldown).UnixNano())
	}
}

// success resets the failure count.
func (p *pool) success(u *backend) {
	if u.fails.Load() != 0 {
		u.fails.Store(0)
	}
}

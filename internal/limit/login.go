package limit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// LoginOptions configure a LoginGuard.
type LoginOptions struct {
	// Counters keeps failures; nil keeps them in process. In cluster mode
	// pass internal/redis's counters so every replica sees every failure;
	// while they cannot be reached, failures are counted in process.
	Counters tollgate.CounterStore
	// Max caps every back-off (protection.login_backoff_max). Defaults to 5m.
	Max time.Duration
	// Base is the first back-off, doubled on each further failure.
	// Defaults to 1s.
	Base time.Duration
	// FreeFailures per account are allowed before any back-off. Defaults
	// to 3.
	FreeFailures int
	// FreeIPFailures per IP, over all accounts, before the IP backs off.
	// Defaults to 20.
	FreeIPFailures int
	// Forget: failures are forgotten this long after the last one.
	// Defaults to 24h.
	Forget time.Duration
	// Remember: an IP that logged in to an account successfully skips that
	// account's back-off (not its own) for this long. Defaults to 720h.
	Remember time.Duration
	Now      func() time.Time // Defaults to time.Now.
}

// LoginGuard slows password guessing; it is internal/auth's LoginGuard.
// Failures back off exponentially per account, per account and IP, and per
// IP (an IPv6 client by its /64), each capped at Max. An account's
// back-off never outlasts Max, and IPs that logged in to it before are
// exempt from it, so a flood from many addresses cannot lock the owner out.
// Attempts refused by Check are not failures and do not extend a back-off.
type LoginGuard struct {
	o     LoginOptions
	local *MemoryCounters // while o.Counters cannot be reached
}

// NewLoginGuard returns a LoginGuard.
func NewLoginGuard(o LoginOptions) *LoginGuard {
	o.Now = orNow(o.Now)
	local := NewMemoryCounters(o.Now, 0)
	if o.Counters == nil {
		o.Counters = local
	}
	o.Max = cmp.Or(o.Max, 5*time.Minute)
	o.Base = cmp.Or(o.Base, time.Second)
	o.FreeFailures = cmp.Or(o.FreeFailures, 3)
	o.FreeIPFailures = cmp.Or(o.FreeIPFailures, 20)
	o.Forget = cmp.Or(o.Forget, 24*time.Hour)
	o.Remember = cmp.Or(o.Remember, 720*time.Hour)
	return &LoginGuard{o: o, local: local}
}

// counters reads the shared counters, or the local ones when the shared
// store fails: a login must not fail because Redis is away.
func (g *LoginGuard) counters(ctx context.Context, keys ...string) []tollgate.Counter {
	if cs, err := g.o.Counters.Counters(ctx, keys...); err == nil {
		return cs
	}
	cs, _ := g.local.Counters(ctx, keys...)
	return cs
}

func (g *LoginGuard) incr(ctx context.Context, key string, now time.Time, ttl time.Duration) error {
	if _, err := g.o.Counters.Incr(ctx, key, now, ttl); err != nil {
		_, _ = g.local.Incr(ctx, key, now, ttl)
		return fmt.Errorf("count login: %w", err)
	}
	return nil
}

func loginKeys(account, ip string) (acct, pair, byIP, known string) {
	account = strings.ToLower(strings.TrimSpace(account))
	if len(account) > 256 {
		account = account[:256]
	}
	return "login:acct:" + account, "login:pair:" + account + "|" + ip,
		"login:ip:" + clientKey(ip), "login:known:" + account + "|" + ip
}

// Check returns a 429 with Retry-After while a login of account from ip
// must wait, nil when it may be tried. Call it before verifying the
// password.
func (g *LoginGuard) Check(ctx context.Context, account, ip string) error {
	acct, pair, byIP, known := loginKeys(account, ip)
	cs := g.counters(ctx, acct, pair, byIP, known)
	now := g.o.Now()
	wait := max(g.wait(cs[1], g.o.FreeFailures, now), g.wait(cs[2], g.o.FreeIPFailures, now))
	if cs[3].Count == 0 {
		wait = max(wait, g.wait(cs[0], g.o.FreeFailures, now))
	}
	if wait <= 0 {
		return nil
	}
	return &tollgate.Error{
		Code:       tollgate.ERateLimited,
		Message:    "too many failed logins; retry later",
		RetryAfter: ceilSeconds(wait),
	}
}

// wait is how long a counter still blocks: after free failures, Base
// doubled per further failure, capped at Max, from the last failure.
func (g *LoginGuard) wait(c tollgate.Counter, free int, now time.Time) time.Duration {
	over := c.Count - free
	if over <= 0 {
		return 0
	}
	d := g.o.Max
	if over <= 30 && g.o.Base<<(over-1) < g.o.Max {
		d = g.o.Base << (over - 1)
	}
	return c.Last.Add(d).Sub(now)
}

// Failed records a failed login of account from ip. When the shared store
// fails, the failure is counted in process and the error returned for the
// log.
func (g *LoginGuard) Failed(ctx context.Context, account, ip string) error {
	acct, pair, byIP, _ := loginKeys(account, ip)
	now := g.o.Now()
	var errs []error
	for _, k := range []string{acct, pair, byIP} {
		if err := g.incr(ctx, k, now, g.o.Forget); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Succeeded clears the account's back-off and remembers ip as one the
// owner uses.
func (g *LoginGuard) Succeeded(ctx context.Context, account, ip string) error {
	acct, pair, _, known := loginKeys(account, ip)
	_ = g.local.Delete(ctx, acct, pair)
	if err := g.o.Counters.Delete(ctx, acct, pair); err != nil {
		return fmt.Errorf("clear failed logins: %w", err)
	}
	return g.incr(ctx, known, g.o.Now(), g.o.Remember)
}

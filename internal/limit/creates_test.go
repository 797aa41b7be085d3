package limit_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/redis"
	"github.com/tollgate/tollgate/internal/tollgate"
)

const createsYAML = `
plans:
  free: {rate_limit: 3/m, concurrency: 1}
  team: {tenant_rate_limit: 2/m}
jobs:
  - {name: photo/a, backend: http, upstreams: ["http://127.0.0.1:1"], rate_limit: 2/m}
  - {name: photo/b, backend: http, upstreams: ["http://127.0.0.1:1"]}
routes: [{name: chat, path: /v1/, upstreams: ["http://127.0.0.1:1"]}]
`

// TestCreatesSpendRateLimits shows that job creates spend the caller's
// plan and tenant rate limits like proxied calls, and the model's own
// rate_limit, with a 429 naming the limit; that no concurrency slot is
// held by a queued job; and, with Redis, that two replicas count
// together.
func TestCreatesSpendRateLimits(t *testing.T) {
	t.Run("one node", func(t *testing.T) {
		clock := newClock()
		lim := newCreatesLimiter(t, nil, clock.Now)
		testCreatesSpendRateLimits(t, lim, lim)
	})
	t.Run("redis, two replicas", func(t *testing.T) {
		a, b := redisReplicas(t, redisURL(t))
		testCreatesSpendRateLimits(t, newCreatesLimiter(t, a, nil), newCreatesLimiter(t, b, nil))
	})
}

func newCreatesLimiter(t *testing.T, db *redis.DB, now func() time.Time) *limit.Limiter {
	t.Helper()
	o := limit.Options{Now: now, Timeout: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)}
	if db != nil {
		o.Rates, o.Slots, o.Ping = db.Rates(), db.Slots(), db.Ping
	}
	lim, err := limit.New(MustConfig(t, createsYAML), o)
	if err != nil {
		t.Fatal(err)
	}
	return lim
}

func testCreatesSpendRateLimits(t *testing.T, a, b *limit.Limiter) {
	ctx := t.Context()
	alice := &tollgate.Principal{UserID: "u-alice", TenantID: "t-alice", Plan: "free"}
	replicas := []tollgate.Admission{a.Creates(), b.Creates()}
	n := 0
	create := func(p *tollgate.Principal, model string) error {
		n++
		_, err := replicas[n%2].Admit(ctx, &tollgate.Call{Principal: p, Route: model, Start: time.Now()})
		return err
	}
	// Two creates of photo/a while neither job ended: the plan's
	// concurrency of 1 does not apply to queued jobs.
	for i := range 2 {
		if err := create(alice, "photo/a"); err != nil {
			t.Fatalf("create %d of photo/a: %v", i+1, err)
		}
	}
	wantRefusal(t, "third create of photo/a", create(alice, "photo/a"), "the model limit of 2/m")
	// The refusal spent nothing: the plan's 3/m still has one left, on
	// a model without a limit of its own.
	if err := create(alice, "photo/b"); err != nil {
		t.Fatalf("create of photo/b: %v", err)
	}
	wantRefusal(t, "second create of photo/b", create(alice, "photo/b"), "the user limit of 3/m")
	// Creates and proxied calls spend the same user limit.
	_, err := a.Admit(ctx, &tollgate.Call{Principal: alice, Route: "chat", Start: time.Now()})
	wantRefusal(t, "a proxied call after three creates", err, "the user limit of 3/m")

	// The tenant limit counts every user of the tenant.
	u1 := &tollgate.Principal{UserID: "u-1", TenantID: "t-team", Plan: "team"}
	u2 := &tollgate.Principal{UserID: "u-2", TenantID: "t-team", Plan: "team"}
	for _, p := range []*tollgate.Principal{u1, u2} {
		if err := create(p, "photo/b"); err != nil {
			t.Fatalf("create as %s: %v", p.UserID, err)
		}
	}
	wantRefusal(t, "a third create in the tenant", create(u1, "photo/b"), "the tenant limit of 2/m")
}

// wantRefusal fails unless err is a 429 rate_limit_exceeded with a
// Retry-After whose message names the limit.
func wantRefusal(t *testing.T, what string, err error, limit string) {
	t.Helper()
	var te *tollgate.Error
	if !errors.As(err, &te) || te.Code != tollgate.ERateLimited || te.RetryAfter < 1 || !strings.Contains(te.Message, limit) {
		t.Fatalf("%s: %v, want a rate limit refusal naming %q with a Retry-After", what, err, limit)
	}
}

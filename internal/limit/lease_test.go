package limit_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/redis"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// renewals is Redis's slot store, counting the renewals that succeeded.
type renewals struct {
	tollgate.ConcurrencyStore
	n    atomic.Int32
	done chan struct{} // signalled after each one
}

func (r *renewals) Renew(ctx context.Context, leases map[string][]string, ttl time.Duration) error {
	err := r.ConcurrencyStore.Renew(ctx, leases, ttl)
	if err == nil {
		r.n.Add(1)
		select {
		case r.done <- struct{}{}:
		default:
		}
	}
	return err
}

// await returns once n renewals have succeeded after from.
func (r *renewals) await(t *testing.T, from int32, n int32) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for r.n.Load()-from < n {
		select {
		case <-r.done:
		case <-timeout:
			t.Fatalf("%d lease renewals in 10 s, want %d", r.n.Load()-from, n)
		}
	}
}

func leaseLimiter(t *testing.T, db *redis.DB, ttl time.Duration, slots tollgate.ConcurrencyStore) *limit.Limiter {
	t.Helper()
	lim, err := limit.New(MustConfig(t, planYAML), limit.Options{
		Rates: db.Rates(), Slots: slots, Ping: db.Ping, LeaseTTL: ttl, Timeout: 2 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return lim
}

func admitCall(ctx context.Context, lim *limit.Limiter, user string) (func(context.Context, *tollgate.Outcome), error) {
	return lim.Admit(ctx, &tollgate.Call{Route: "chat", Principal: &tollgate.Principal{UserID: user, TenantID: "t"}})
}

// A replica that dies holding slots gives them back when its leases
// expire; a live replica renews its leases so long calls keep theirs.
func TestConcurrencyLeases(t *testing.T) {
	da, db := redisReplicas(t, redisURL(t))
	ctx := context.Background()
	const ttl = 600 * time.Millisecond

	crashed := leaseLimiter(t, da, ttl, da.Slots()) // never started, never releases: as if killed
	for range 2 {
		if _, err := admitCall(ctx, crashed, "fay"); err != nil {
			t.Fatal(err)
		}
	}
	renewed := &renewals{ConcurrencyStore: db.Slots(), done: make(chan struct{}, 1)}
	live := leaseLimiter(t, db, ttl, renewed)
	if err := live.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer live.Stop()
	if _, err := admitCall(ctx, live, "fay"); tollgate.ErrorCode(err) != tollgate.ERateLimited {
		t.Fatalf("while the crashed replica's leases live: %v, want 429", err)
	}
	eventually(t, 3*time.Second, "a crashed replica's slots come back", func() bool {
		_, err := admitCall(ctx, live, "fay")
		return err == nil
	})

	// fay now holds one slot on the live replica (the call above); take
	// the second and hold both for several lease lifetimes: renewals run
	// every ttl/3, so nine of them span at least three lifetimes.
	if _, err := admitCall(ctx, live, "fay"); err != nil {
		t.Fatal(err)
	}
	renewed.await(t, renewed.n.Load(), 9)
	if _, err := admitCall(ctx, crashed, "fay"); tollgate.ErrorCode(err) != tollgate.ERateLimited {
		t.Fatalf("slots of long calls on a live replica lapsed: %v, want 429", err)
	}
}

package limit_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/redis"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func leaseLimiter(t *testing.T, db *redis.DB, ttl time.Duration) *limit.Limiter {
	t.Helper()
	lim, err := limit.New(MustConfig(t, planYAML), limit.Options{
		Rates: db.Rates(), Slots: db.Slots(), Ping: db.Ping, LeaseTTL: ttl, Timeout: 2 * time.Second,
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

	crashed := leaseLimiter(t, da, ttl) // never started, never releases: as if killed
	for range 2 {
		if _, err := admitCall(ctx, crashed, "fay"); err != nil {
			t.Fatal(err)
		}
	}
	live := leaseLimiter(t, db, ttl)
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
	// the second and hold both for several lease lifetimes.
	if _, err := admitCall(ctx, live, "fay"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * ttl)
	if _, err := admitCall(ctx, crashed, "fay"); tollgate.ErrorCode(err) != tollgate.ERateLimited {
		t.Fatalf("slots of long calls on a live replica lapsed: %v, want 429", err)
	}
}

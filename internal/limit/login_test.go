package limit_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// login plays the login handler: Check, then verify the password, then
// Failed or Succeeded. It returns the Check error.
func login(t *testing.T, g *limit.LoginGuard, account, ip string, right bool) error {
	t.Helper()
	ctx := context.Background()
	if err := g.Check(ctx, account, ip); err != nil {
		return err
	}
	if right {
		return g.Succeeded(ctx, account, ip)
	}
	return g.Failed(ctx, account, ip)
}

func retryAfter(err error) int {
	var te *tollgate.Error
	if errors.As(err, &te) && te.Code == tollgate.ERateLimited {
		return te.RetryAfter
	}
	return -1
}

func TestLoginFlood(t *testing.T) {
	for _, mode := range []string{"one node", "redis"} {
		t.Run(mode, func(t *testing.T) {
			clock := newClock()
			o := limit.LoginOptions{Max: 5 * time.Minute, Now: clock.Now}
			o.Counters = limit.NewMemoryCounters(clock.Now, 0)
			if mode == "redis" {
				o.Counters = MustRedis(t, redisURL(t)).Counters()
			}
			a, b := limit.NewLoginGuard(o), limit.NewLoginGuard(o) // two replicas
			const owner, home = "Owner", "198.51.100.1"
			if err := login(t, a, owner, home, true); err != nil {
				t.Fatalf("owner's first login: %v", err)
			}

			flood := func() {
				t.Helper()
				refused := 0 // 2000 guesses from 500 addresses over both replicas
				for i := range 2000 {
					g := []*limit.LoginGuard{a, b}[i%2]
					err := login(t, g, "owner", fmt.Sprintf("10.%d.%d.1", i%500/250, i%250), false)
					if ra := retryAfter(err); ra > 0 {
						refused++
						if ra > 300 {
							t.Fatalf("Retry-After %ds exceeds the 5m cap", ra)
						}
					} else if err != nil {
						t.Fatal(err)
					}
					clock.Advance(10 * time.Millisecond)
				}
				if refused < 1900 {
					t.Fatalf("flood: only %d of 2000 guesses refused; the account does not back off", refused)
				}
			}
			flood()
			// The owner's usual address is not locked out at all …
			if err := login(t, b, owner, home, true); err != nil {
				t.Fatalf("owner from a known address during the flood: %v", err)
			}
			flood()
			// … and a new address at most for the cap.
			err := b.Check(context.Background(), owner, "192.0.2.44")
			if ra := retryAfter(err); ra <= 0 || ra > 300 {
				t.Fatalf("owner from a new address during the flood: %v, want a 429 of at most 300s", err)
			}
			clock.Advance(5 * time.Minute)
			if err := login(t, a, owner, "192.0.2.44", true); err != nil {
				t.Fatalf("owner from a new address after the cap: %v", err)
			}
		})
	}
}

func TestLoginBackoffGrows(t *testing.T) {
	clock := newClock()
	g := limit.NewLoginGuard(limit.LoginOptions{Now: clock.Now, Base: time.Second, Max: time.Minute, FreeFailures: 3})
	var waits []int
	for range 11 {
		for err := login(t, g, "bob", "203.0.113.5", false); err != nil; err = login(t, g, "bob", "203.0.113.5", false) {
			waits = append(waits, retryAfter(err))
			clock.Advance(time.Duration(retryAfter(err)) * time.Second)
		}
	}
	want := []int{1, 2, 4, 8, 16, 32, 60}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Fatalf("back-off after each failure past the free ones: %v, want %v (doubling, capped at 60s)", waits, want)
	}
}

// The login handler of internal/auth takes a LoginGuard as it is.
var _ auth.LoginGuard = (*limit.LoginGuard)(nil)

package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// RunBudgetCounters runs the budget counter suite. open must return empty
// counters of their own (a fresh key prefix for Redis) for each call.
func RunBudgetCounters(t *testing.T, open func(t *testing.T) tollgate.BudgetCounters) {
	t.Run("MissingUntilInit", func(t *testing.T) {
		c := open(t)
		cs := []tollgate.BudgetCounter{{Key: "u", Limit: 100}, {Key: "t", Limit: 1000}}
		missing, refused, err := c.Reserve(t.Context(), cs, 10)
		if err != nil || len(missing) != 2 || refused != -1 {
			t.Fatalf("Reserve on empty = %v, %d, %v; want both missing", missing, refused, err)
		}
		if err := c.Init(t.Context(), "u", 85, time.Time{}); err != nil {
			t.Fatalf("Init: %v", err)
		}
		if err := c.Init(t.Context(), "u", 0, time.Time{}); err != nil {
			t.Fatalf("Init again: %v", err)
		}
		missing, _, _ = c.Reserve(t.Context(), cs, 10)
		if len(missing) != 1 || missing[0] != 1 {
			t.Fatalf("missing = %v, want [1]", missing)
		}
		_ = c.Init(t.Context(), "t", 0, time.Now().Add(time.Hour))
		if missing, refused, err := c.Reserve(t.Context(), cs, 10); err != nil || missing != nil || refused != -1 {
			t.Fatalf("Reserve 10 at 85/100 = %v, %d, %v; want granted", missing, refused, err)
		}
		if _, refused, _ := c.Reserve(t.Context(), cs, 6); refused != 0 {
			t.Fatalf("Reserve 6 at 95/100: refused = %d, want 0 (the user counter)", refused)
		}
		got, err := c.Adjust(t.Context(), []string{"u", "t", "nope"}, -4)
		if err != nil || len(got) != 3 || got[0] != 91 || got[1] != 6 || got[2] != -1 {
			t.Fatalf("Adjust = %v, %v; want [91 6 -1]", got, err)
		}
		if _, refused, _ := c.Reserve(t.Context(), cs, 9); refused != -1 {
			t.Fatalf("Reserve 9 at 91/100 refused, want granted: a budget may be used to the last micro-unit")
		}
	})
	t.Run("ExactUnderConcurrency", func(t *testing.T) {
		c := open(t)
		cs := []tollgate.BudgetCounter{{Key: "user", Limit: 50 * 1000}, {Key: "tenant", Limit: 1_000_000}}
		for _, k := range []string{"user", "tenant"} {
			if err := c.Init(t.Context(), k, 0, time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
		var granted atomic.Int64
		var wg sync.WaitGroup
		for range 200 {
			wg.Go(func() {
				_, refused, err := c.Reserve(t.Context(), cs, 1000)
				if err != nil {
					t.Errorf("Reserve: %v", err)
				}
				if refused == -1 {
					granted.Add(1)
				}
			})
		}
		wg.Wait()
		if granted.Load() != 50 {
			t.Errorf("granted %d reservations, want exactly 50", granted.Load())
		}
		got, _ := c.Adjust(t.Context(), []string{"user", "tenant"}, 0)
		if got[0] != 50_000 || got[1] != 50_000 {
			t.Errorf("counters = %v, want [50000 50000]", got)
		}
	})
}

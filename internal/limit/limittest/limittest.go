// Package limittest is the conformance suite of the protection stores:
// every RateStore, ConcurrencyStore, CounterStore and BanStore (in process,
// Redis, SQLite, PostgreSQL) passes the same tests, so both deployment
// modes behave the same.
package limittest

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// key returns a key no other test uses.
func key(name string) string { return name + ":" + rand.Text()[:10] }

// RateStore tests a GCRA store whose clock is the wall clock (or close to
// it): bursts, all-or-nothing decisions and the reported headers.
func RateStore(t *testing.T, s tollgate.RateStore) {
	ctx := context.Background()
	t.Run("burst of N then refused with a retry of one interval", func(t *testing.T) {
		k := []tollgate.RateKey{{Key: key("burst"), Rate: tollgate.Rate{N: 5, Period: time.Hour}}}
		for i := range 5 {
			d, err := s.Allow(ctx, k)
			if err != nil || !d.Allowed || d.Remaining != 4-i || d.Limit != 5 {
				t.Fatalf("call %d: %+v %v, want admitted with %d remaining of 5", i+1, d, err, 4-i)
			}
		}
		d, err := s.Allow(ctx, k)
		if err != nil || d.Allowed || d.Key != k[0].Key {
			t.Fatalf("call 6: %+v %v, want refused by %s", d, err, k[0].Key)
		}
		if d.RetryAfter <= 11*time.Minute || d.RetryAfter > 12*time.Minute {
			t.Fatalf("retry after %v, want about one emission interval (12m)", d.RetryAfter)
		}
	})
	t.Run("all or nothing", func(t *testing.T) {
		tight := tollgate.RateKey{Key: key("tight"), Rate: tollgate.Rate{N: 1, Period: time.Hour}}
		wide := tollgate.RateKey{Key: key("wide"), Rate: tollgate.Rate{N: 3, Period: time.Hour}}
		if d, err := s.Allow(ctx, []tollgate.RateKey{wide, tight}); err != nil || !d.Allowed || d.Key != tight.Key || d.Remaining != 0 {
			t.Fatalf("first: %+v %v, want admitted, tightest key %s with 0 remaining", d, err, tight.Key)
		}
		for range 3 {
			if d, _ := s.Allow(ctx, []tollgate.RateKey{wide, tight}); d.Allowed {
				t.Fatal("admitted past the tight key")
			}
		}
		if d, _ := s.Allow(ctx, []tollgate.RateKey{wide}); !d.Allowed || d.Remaining != 1 {
			t.Fatalf("wide alone: %+v, want admitted with 1 remaining (refused calls did not count)", d)
		}
	})
	t.Run("sustained rate refills", func(t *testing.T) {
		k := []tollgate.RateKey{{Key: key("refill"), Rate: tollgate.Rate{N: 2, Period: 200 * time.Millisecond}}}
		s.Allow(ctx, k)
		s.Allow(ctx, k)
		deadline := time.Now().Add(2 * time.Second)
		for {
			if d, _ := s.Allow(ctx, k); d.Allowed {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("a 2/200ms key never admitted again")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// ConcurrencyStore tests caps, all-or-nothing acquisition and release.
func ConcurrencyStore(t *testing.T, s tollgate.ConcurrencyStore) {
	ctx := context.Background()
	user, tenant := key("user"), key("tenant")
	keys := []tollgate.SlotKey{{Key: user, Limit: 2}, {Key: tenant, Limit: 3}}
	names := []string{user, tenant}
	for _, id := range []string{"a", "b"} {
		if full, err := s.Acquire(ctx, id, keys, time.Minute); err != nil || full != "" {
			t.Fatalf("acquire %s: %q %v, want a slot", id, full, err)
		}
	}
	if full, _ := s.Acquire(ctx, "c", keys, time.Minute); full != user {
		t.Fatalf("third call of the user: full %q, want %s", full, user)
	}
	other := key("user")
	if full, _ := s.Acquire(ctx, "d", []tollgate.SlotKey{{Key: other, Limit: 2}, {Key: tenant, Limit: 3}}, time.Minute); full != "" {
		t.Fatalf("another user of the tenant: full %q, want a slot", full)
	}
	if full, _ := s.Acquire(ctx, "e", []tollgate.SlotKey{{Key: other, Limit: 2}, {Key: tenant, Limit: 3}}, time.Minute); full != tenant {
		t.Fatalf("tenant at its cap: full %q, want %s", full, tenant)
	}
	// The refused call took nothing under other: one more fits after a release.
	if err := s.Release(ctx, "a", names); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, "a", names); err != nil {
		t.Fatalf("second release: %v, want harmless", err)
	}
	if full, _ := s.Acquire(ctx, "f", []tollgate.SlotKey{{Key: other, Limit: 2}, {Key: tenant, Limit: 3}}, time.Minute); full != "" {
		t.Fatalf("after a release: full %q, want a slot", full)
	}
	if full, _ := s.Acquire(ctx, "g", keys, time.Minute); full != tenant {
		t.Fatalf("double release freed two slots: full %q, want %s", full, tenant)
	}
	if err := s.Renew(ctx, map[string][]string{"b": names}, time.Minute); err != nil {
		t.Fatalf("renew: %v", err)
	}
}

// CounterStore tests counts, last times and deletion.
func CounterStore(t *testing.T, s tollgate.CounterStore) {
	ctx := context.Background()
	k, absent := key("c"), key("absent")
	t0 := time.Now().Truncate(time.Millisecond)
	for i := range 3 {
		n, err := s.Incr(ctx, k, t0.Add(time.Duration(i)*time.Second), time.Hour)
		if err != nil || n != i+1 {
			t.Fatalf("incr %d: %d %v", i+1, n, err)
		}
	}
	cs, err := s.Counters(ctx, k, absent)
	if err != nil || len(cs) != 2 {
		t.Fatalf("counters: %v %v", cs, err)
	}
	if cs[0].Count != 3 || !cs[0].Last.Equal(t0.Add(2*time.Second)) || cs[1].Count != 0 {
		t.Fatalf("counters %+v, want 3 with the last time, and zero for an absent key", cs)
	}
	if err := s.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	if cs, _ := s.Counters(ctx, k); cs[0].Count != 0 {
		t.Fatalf("after delete: %+v, want zero", cs[0])
	}
}

// BanStore tests storing, replacing, listing and lifting bans.
func BanStore(t *testing.T, s tollgate.BanStore) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, b := range []*tollgate.Ban{
		{IP: "203.0.113.9", Reason: "first", Until: now.Add(time.Hour), CreatedAt: now},
		{IP: "203.0.113.9", Reason: "replaced", Until: now.Add(2 * time.Hour), CreatedAt: now},
		{IP: "192.0.2.0/24", Reason: "range", Until: now.Add(time.Hour), CreatedAt: now},
		{IP: "198.51.100.1", Reason: "over", Until: now.Add(-time.Second), CreatedAt: now.Add(-time.Hour)},
	} {
		if err := s.PutBan(ctx, b); err != nil {
			t.Fatalf("put %s: %v", b.IP, err)
		}
	}
	bans, err := s.Bans(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*tollgate.Ban{}
	for _, b := range bans {
		got[b.IP] = b
	}
	if len(got) != 2 || got["203.0.113.9"] == nil || got["192.0.2.0/24"] == nil {
		t.Fatalf("bans %v, want the two live ones", got)
	}
	if b := got["203.0.113.9"]; b.Reason != "replaced" || !b.Until.Equal(now.Add(2*time.Hour)) {
		t.Fatalf("replaced ban %+v, want the second one", b)
	}
	if err := s.DeleteBan(ctx, "203.0.113.9"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBan(ctx, "203.0.113.9"); tollgate.ErrorCode(err) != tollgate.ENotFound {
		t.Fatalf("lift twice: %v, want not_found", err)
	}
	if bans, _ := s.Bans(ctx, now); len(bans) != 1 || bans[0].IP != "192.0.2.0/24" {
		t.Fatalf("after lifting: %v, want the range ban only", bans)
	}
}

// LimitAdmitter tests the combined step: a refusal by either the rates or
// the slots leaves both untouched; slots taken are released through s.
func LimitAdmitter(t *testing.T, a tollgate.LimitAdmitter, s tollgate.ConcurrencyStore) {
	ctx := context.Background()
	rate := tollgate.RateKey{Key: key("rate"), Rate: tollgate.Rate{N: 1, Period: time.Hour}}
	slot := tollgate.SlotKey{Key: key("slot"), Limit: 1}
	d, full, err := a.AdmitLimits(ctx, "a", []tollgate.RateKey{rate}, []tollgate.SlotKey{slot}, time.Minute)
	if err != nil || !d.Allowed || full != "" || d.Key != rate.Key {
		t.Fatalf("first: %+v %q %v, want admitted", d, full, err)
	}
	if err := s.Release(ctx, "a", []string{slot.Key}); err != nil {
		t.Fatal(err)
	}
	// The rate refuses: the slot must stay free.
	if d, full, _ := a.AdmitLimits(ctx, "b", []tollgate.RateKey{rate}, []tollgate.SlotKey{slot}, time.Minute); d.Allowed || full != "" {
		t.Fatalf("over the rate: %+v %q, want refused by the rate", d, full)
	}
	fresh := tollgate.RateKey{Key: key("rate"), Rate: tollgate.Rate{N: 1, Period: time.Hour}}
	if d, full, _ := a.AdmitLimits(ctx, "c", []tollgate.RateKey{fresh}, []tollgate.SlotKey{slot}, time.Minute); !d.Allowed || full != "" {
		t.Fatalf("slot after a rate refusal: %+v %q, want admitted (the refusal took no slot)", d, full)
	}
	// The slot is full: the fresh rate key must not count.
	other := tollgate.RateKey{Key: key("rate"), Rate: tollgate.Rate{N: 1, Period: time.Hour}}
	if _, full, _ := a.AdmitLimits(ctx, "d", []tollgate.RateKey{other}, []tollgate.SlotKey{slot}, time.Minute); full != slot.Key {
		t.Fatalf("slot full: %q, want %s", full, slot.Key)
	}
	if d, _, _ := a.AdmitLimits(ctx, "e", []tollgate.RateKey{other}, nil, time.Minute); !d.Allowed {
		t.Fatalf("rate after a slot refusal: %+v, want admitted (the refusal did not count)", d)
	}
}

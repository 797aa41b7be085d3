package meter_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/meter"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// testClock is a clock a test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// TestKilledReplicaReconciledWhenItsLeaseExpires: replica a dies with ten
// calls in flight. Until its lease expires the usage report shows them in
// flight, with what they reserve; at replica b's first heartbeat after
// the expiry they are settled as unknown and their reservations leave the
// shared budget, while b's own call in flight stays open.
func TestKilledReplicaReconciledWhenItsLeaseExpires(t *testing.T) {
	pg, url, schema := mustPostgres(t)
	_, rurl, prefix := mustRedis(t)
	cfg := mustConfig(t, "metering: {unknown_charge: none, lease_ttl: 10s}\n")
	t0 := time.Now()
	clockA, clockB := &testClock{now: t0}, &testClock{now: t0}
	replica := func(c *testClock) *meter.Meter {
		l := openPostgres(t, url, schema).Ledger()
		return mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l, Counters: openRedis(t, rurl, prefix).BudgetCounters(),
			Cluster: true, Clock: c.Now})
	}
	a, b := replica(clockA), replica(clockB)
	p := principal("u1", "t1", "capped")
	for range 10 {
		if _, err := a.Admit(context.Background(), call(p, "chat")); err != nil { // never released: a dies
			t.Fatal(err)
		}
	}
	own := call(p, "chat")
	releaseOwn, err := b.Admit(context.Background(), own)
	if err != nil {
		t.Fatal(err)
	}
	report := func() meter.ReportRow {
		t.Helper()
		rep, err := meter.Report(context.Background(), pg.Ledger(), tollgate.UsageQuery{})
		if err != nil {
			t.Fatal(err)
		}
		return rep.Total
	}
	if r := report(); r.InFlight != 11 || r.Reserved != "0.011000" || r.Requests != 0 {
		t.Fatalf("report while a's calls run: %+v; want 11 in flight reserving 0.011000", r)
	}

	clockB.Set(t0.Add(9 * time.Second)) // a's lease holds until t0+10s
	if err := b.Heartbeat(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := report(); r.InFlight != 11 {
		t.Fatalf("b reconciled a's calls before a's lease expired: %+v", r)
	}

	clockB.Set(t0.Add(11 * time.Second))
	if err := b.Heartbeat(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := report(); r.InFlight != 1 || r.Requests != 10 || r.Cost != "0.000000" {
		t.Fatalf("report after a's lease expired: %+v; want a's 10 settled at no charge (unknown_charge none), b's 1 in flight", r)
	}
	if r, err := pg.Ledger().Record(context.Background(), own.RequestID); err != nil || r.Settled {
		t.Fatalf("b's own call in flight = %+v, %v; want it open", r, err)
	}
	releaseOwn(context.Background(), ok(tollgate.Units{}))
	// The budget of 50 calls is whole again but for b's one call.
	if admitted, _ := fire(t, []*meter.Meter{b}, p, "chat", 60); admitted != 49 {
		t.Fatalf("admitted %d after reconciling, want 49: a's reservations still held", admitted)
	}
}

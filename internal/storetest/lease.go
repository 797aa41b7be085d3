package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// testLeases: the open records of a replica whose lease expired (or that
// holds none) are reconciled, those of a replica whose lease holds and
// those written before leases are not; an ended lease frees its records
// at once.
func testLeases(t *testing.T, l LedgerStore) {
	ctx := t.Context()
	t0 := day0.Add(time.Hour)
	rec := func(id, replica string) *tollgate.UsageRecord {
		r := openRecord(id, "u1", "t1", time.Hour, 700)
		r.Replica = replica
		return r
	}
	if err := l.RenewLease(ctx, "a", t0.Add(10*time.Second)); err != nil {
		t.Fatalf("RenewLease(a): %v", err)
	}
	if err := l.RenewLease(ctx, "b", t0.Add(5*time.Second)); err != nil {
		t.Fatalf("RenewLease(b): %v", err)
	}
	wantCode(t, "RenewLease(\"\")", l.RenewLease(ctx, "", t0), tollgate.EInvalid)
	mustWrite(t, l, []*tollgate.UsageRecord{rec("a1", "a"), rec("b1", "b"), rec("b2", "b"), rec("c1", "c"), rec("old", "")}, nil)
	if r, err := l.Record(ctx, "a1"); err != nil || r.Replica != "a" {
		t.Fatalf("Record(a1) = %+v, %v; want replica a", r, err)
	}
	reconcile := func(at time.Time, want ...string) {
		t.Helper()
		got, err := l.ReconcileExpired(ctx, at, true)
		if err != nil {
			t.Fatalf("ReconcileExpired(%v): %v", at, err)
		}
		var ids []string
		for _, r := range got {
			ids = append(ids, r.RequestID)
			if r.Outcome != tollgate.ResultUnknown || r.Cost != 700 || !r.End.Equal(at.Truncate(time.Microsecond)) {
				t.Errorf("reconciled %s = %+v; want unknown, cost 700, end %v", r.RequestID, r, at)
			}
		}
		slices.Sort(ids)
		if !slices.Equal(ids, want) {
			t.Fatalf("ReconcileExpired(t0+%v) settled %v, want %v", at.Sub(t0), ids, want)
		}
		for _, id := range want {
			if r, err := l.Record(ctx, id); err != nil || !r.Settled || r.Outcome != tollgate.ResultUnknown {
				t.Errorf("Record(%s) after reconcile = %+v, %v", id, r, err)
			}
		}
	}
	reconcile(t0.Add(time.Second), "c1")         // c holds no lease
	reconcile(t0.Add(6*time.Second), "b1", "b2") // b's lease expired at t0+5s
	rows, err := l.Usage(ctx, tollgate.UsageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Requests != 3 || rows[0].InFlight != 2 || rows[0].Reserved != 1400 || rows[0].Cost != 2100 {
		t.Fatalf("usage = %+v; want 3 settled costing 2100, a1 and old in flight reserving 1400", rows)
	}
	// A late settlement by b, which was presumed dead, changes nothing.
	mustWrite(t, l, nil, []*tollgate.UsageRecord{settle(rec("b1", "b"), 1, tollgate.Units{})})
	if r, _ := l.Record(ctx, "b1"); r.Outcome != tollgate.ResultUnknown || r.Cost != 700 || r.Replica != "b" {
		t.Errorf("b1 after a late settlement = %+v, want it as reconciled", r)
	}
	if err := l.RenewLease(ctx, "a", t0.Add(20*time.Second)); err != nil {
		t.Fatal(err)
	}
	reconcile(t0.Add(15 * time.Second)) // a renewed: nothing
	if err := l.EndLease(ctx, "a"); err != nil {
		t.Fatalf("EndLease: %v", err)
	}
	reconcile(t0.Add(15*time.Second), "a1")
	if r, err := l.Record(ctx, "old"); err != nil || r.Settled {
		t.Errorf("a record without a replica = %+v, %v; want it left open (Reconcile's)", r, err)
	}
}

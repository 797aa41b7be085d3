package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// testHeld: a held record (a job's) outlives both reconcile passes, still
// counting its reservation against budgets, and SettleHeld settles it
// exactly once, also when several callers race, keeping what the open
// record fixed.
func testHeld(t *testing.T, l LedgerStore) {
	ctx := t.Context()
	rec := func(id, replica string, held bool, start time.Duration) *tollgate.UsageRecord {
		r := openRecord(id, "u1", "t1", start, 700)
		r.Replica, r.Held = replica, held
		return r
	}
	job, call := rec("job", "", true, time.Minute), rec("call", "", false, time.Minute)
	deadJob, deadCall := rec("dead-job", "gone", true, 2*time.Minute), rec("dead-call", "gone", false, 2*time.Minute)
	mustWrite(t, l, []*tollgate.UsageRecord{job, call, deadJob, deadCall}, nil)
	at := day0.Add(time.Hour)
	got, err := l.Reconcile(ctx, at, at, true)
	if err != nil || len(got) != 1 || got[0].RequestID != "call" {
		t.Fatalf("Reconcile = %+v, %v; want only the plain call", got, err)
	}
	got, err = l.ReconcileExpired(ctx, at, true)
	if err != nil || len(got) != 1 || got[0].RequestID != "dead-call" {
		t.Fatalf("ReconcileExpired = %+v, %v; want only the plain call of the dead replica", got, err)
	}
	for _, id := range []string{"job", "dead-job"} {
		if r, err := l.Record(ctx, id); err != nil || r.Settled || !r.Held || r.Reserved != 700 {
			t.Errorf("Record(%s) after reconciling = %+v, %v; want open, held, 700 reserved", id, r, err)
		}
	}
	if c, err := l.Committed(ctx, tollgate.ScopeUser, "u1", day0); err != nil || c != 4*700 {
		t.Errorf("Committed = %v, %v; want two reconciled at 700 and two held reservations of 700", c, err)
	}
	wantHeld := func(want ...string) {
		t.Helper()
		open, err := l.HeldOpen(ctx)
		if err != nil {
			t.Fatalf("HeldOpen: %v", err)
		}
		var ids []string
		for _, r := range open {
			ids = append(ids, r.RequestID)
		}
		if !slices.Equal(ids, want) {
			t.Errorf("HeldOpen = %v, want %v", ids, want)
		}
	}
	wantHeld("job", "dead-job")

	end := *job
	end.Start, end.Reserved, end.UserID = day0, 1, "someone-else" // kept as opened
	end.End, end.Outcome, end.Status, end.Cost = at, tollgate.ResultOK, 200, 420
	end.LatencyMS, end.Units = 1500, tollgate.Units{GPUMillis: 1200}
	first, err := l.SettleHeld(ctx, &end)
	if err != nil || !first {
		t.Fatalf("SettleHeld = %v, %v; want it settled", first, err)
	}
	again := end
	again.Cost = 999
	if second, err := l.SettleHeld(ctx, &again); err != nil || second {
		t.Errorf("SettleHeld again = %v, %v; want false (settled already)", second, err)
	}
	r, err := l.Record(ctx, "job")
	if err != nil || !r.Settled || r.Seq == 0 || r.Cost != 420 || r.Outcome != tollgate.ResultOK || r.Units.GPUMillis != 1200 ||
		r.Reserved != 700 || r.UserID != "u1" || !r.Held {
		t.Errorf("settled job = %+v, %v; want ok at 420 with what it was opened with", r, err)
	}
	wantTime(t, "job.Start", r.Start, job.Start)
	_, err = l.SettleHeld(ctx, &tollgate.UsageRecord{RequestID: "absent", Outcome: tollgate.ResultOK})
	wantCode(t, "SettleHeld(absent)", err, tollgate.ENotFound)
	wantHeld("dead-job")

	// Replicas racing to settle the same job: one does.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 8 {
		wg.Go(func() {
			s := *deadJob
			s.End, s.Outcome, s.Cost = at, tollgate.ResultRejected, tollgate.Money(i)
			ok, err := l.SettleHeld(ctx, &s)
			if err != nil {
				t.Errorf("SettleHeld %d: %v", i, err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d of 8 racing SettleHeld calls settled the record, want 1", wins)
	}
	wantHeld()
	exported, err := l.Export(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, r := range exported {
		count[r.RequestID]++
	}
	if count["job"] != 1 || count["dead-job"] != 1 || len(exported) != 4 {
		t.Errorf("export has %v, want each of the four records once", count)
	}
}

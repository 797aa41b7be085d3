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
	wins := racing(t, 8, func(i int) (bool, error) {
		s := *deadJob
		s.End, s.Outcome, s.Cost = at, tollgate.ResultRejected, tollgate.Money(i)
		return l.SettleHeld(ctx, &s)
	})
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

// testHeldMove: a held record moves from replica to replica once, and is
// listed as a stopped replica's while the replica it names holds no live
// lease.
func testHeldMove(t *testing.T, l LedgerStore) {
	ctx := t.Context()
	t0 := day0.Add(time.Hour)
	job := openRecord("job", "u1", "t1", time.Hour, 700)
	job.Replica, job.Held = "a", true
	call := openRecord("call", "u1", "t1", time.Hour, 700)
	call.Replica = "gone"
	mustWrite(t, l, []*tollgate.UsageRecord{job, call}, nil)
	if err := l.RenewLease(ctx, "b", t0.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	expired := func(at time.Time, want ...string) {
		t.Helper()
		got, err := l.HeldExpired(ctx, at)
		if err != nil {
			t.Fatalf("HeldExpired: %v", err)
		}
		var ids []string
		for _, r := range got {
			ids = append(ids, r.RequestID+"@"+r.Replica)
		}
		if !slices.Equal(ids, want) {
			t.Errorf("HeldExpired(t0+%v) = %v, want %v", at.Sub(t0), ids, want)
		}
	}
	expired(t0, "job@a") // a holds no lease; the plain call is not held
	moved := racing(t, 4, func(int) (bool, error) { return l.MoveHeld(ctx, "job", "a", "b") })
	if moved != 1 {
		t.Errorf("%d of 4 racing MoveHeld calls moved the record, want 1", moved)
	}
	if r, err := l.Record(ctx, "job"); err != nil || r.Replica != "b" || r.Settled {
		t.Errorf("Record(job) = %+v, %v; want open on b", r, err)
	}
	expired(t0)                              // b's lease holds
	expired(t0.Add(11*time.Second), "job@b") // and then lapses
	if ok, err := l.MoveHeld(ctx, "call", "gone", "b"); err != nil || ok {
		t.Errorf("MoveHeld of a record that is not held = %v, %v; want false", ok, err)
	}
	end := *job
	end.End, end.Outcome = t0, tollgate.ResultRejected
	if ok, err := l.SettleHeld(ctx, &end); err != nil || !ok {
		t.Fatalf("SettleHeld: %v, %v", ok, err)
	}
	if ok, err := l.MoveHeld(ctx, "job", "b", "c"); err != nil || ok {
		t.Errorf("MoveHeld of a settled record = %v, %v; want false", ok, err)
	}
	_, err := l.MoveHeld(ctx, "absent", "b", "c")
	wantCode(t, "MoveHeld(absent)", err, tollgate.ENotFound)
}

// racing runs n calls of f at once and returns how many reported true.
func racing(t *testing.T, n int, f func(i int) (bool, error)) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range n {
		wg.Go(func() {
			ok, err := f(i)
			if err != nil {
				t.Errorf("racing call %d: %v", i, err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return wins
}

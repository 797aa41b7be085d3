package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// TestHeldRecordsOutliveACrash: a job's held record, opened by a process
// that died, is not reconciled at the next start: it stays an open row
// that budgets and reports still count (the dead process's journal
// segment, holding a plain call, is consumed), and the job's end settles
// it once, also after another restart.
func TestHeldRecordsOutliveACrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tollgate.db")
	dead := mustOpenAt(t, path).Ledger()
	job, call := openRec("job", 0, 700), openRec("call", 0, 300)
	job.Held = true
	mustWrite(t, dead, []*tollgate.UsageRecord{job}, nil)
	if files := journalFiles(t, path); len(files) != 0 {
		t.Errorf("journal files %v after opening a held record, want none: a queued job must not keep a segment", files)
	}
	mustWrite(t, dead, []*tollgate.UsageRecord{call}, nil)
	if err := dead.Write(t.Context(), []*tollgate.UsageRecord{job}, nil); tollgate.ErrorCode(err) != tollgate.EConflict {
		t.Errorf("opening the held record again: %v, want a conflict", err)
	}
	// The process dies here.

	l := mustOpenAt(t, path).Ledger()
	at := t0.Add(time.Minute)
	got, err := l.Reconcile(t.Context(), at, at, true)
	if err != nil || len(got) != 1 || got[0].RequestID != "call" {
		t.Fatalf("Reconcile = %+v, %v; want only the plain call", got, err)
	}
	if files := journalFiles(t, path); len(files) != 0 {
		t.Errorf("journal files %v, want the dead process's segment consumed", files)
	}
	if r, err := l.Record(t.Context(), "job"); err != nil || r.Settled || !r.Held || r.Reserved != 700 {
		t.Fatalf("Record(job) = %+v, %v; want an open held row", r, err)
	}
	if c, err := l.Committed(t.Context(), tollgate.ScopeUser, "u1", t0); err != nil || c != 1000 {
		t.Errorf("Committed = %v, %v; want the call's 300 and the job's 700 held", c, err)
	}
	rows, err := l.Usage(t.Context(), tollgate.UsageQuery{})
	if err != nil || len(rows) != 1 || rows[0].InFlight != 1 || rows[0].Reserved != 700 {
		t.Errorf("Usage = %+v, %v; want the job in flight with 700 reserved", rows, err)
	}

	// Another restart: the held row is still open, once.
	l = mustOpenAt(t, path).Ledger()
	if got, err := l.Reconcile(t.Context(), at, at, true); err != nil || len(got) != 0 {
		t.Fatalf("Reconcile after another restart = %+v, %v; want nothing", got, err)
	}
	open, err := l.HeldOpen(t.Context())
	if err != nil || len(open) != 1 || open[0].RequestID != "job" {
		t.Fatalf("HeldOpen = %+v, %v; want the job", open, err)
	}
	end := settled(job, 0)
	end.Outcome = tollgate.ResultRejected
	if ok, err := l.SettleHeld(t.Context(), end); err != nil || !ok {
		t.Fatalf("SettleHeld = %v, %v", ok, err)
	}
	if ok, err := l.SettleHeld(t.Context(), end); err != nil || ok {
		t.Errorf("SettleHeld again = %v, %v; want false", ok, err)
	}
	if c, err := l.Committed(t.Context(), tollgate.ScopeUser, "u1", t0); err != nil || c != 300 {
		t.Errorf("Committed after the job settled at 0 = %v, %v; want 300", c, err)
	}
}

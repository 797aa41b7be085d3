package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// TestLedgerRowsLeftOpenByAnEarlierVersion covers a database upgraded
// with records that the ledger used to keep open in the table.
func TestLedgerRowsLeftOpenByAnEarlierVersion(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "db"))
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	day := time.Date(2026, time.November, 3, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"old-a", "old-b"} {
		if _, err := db.write.ExecContext(t.Context(), `INSERT INTO usage_records (request_id, started_at, user_id, reserved)
			VALUES (?, ?, 'u1', ?)`, id, day.Add(time.Duration(i)*time.Minute).UnixMicro(), 100*(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	l := db.Ledger()
	if c, err := l.Committed(t.Context(), tollgate.ScopeUser, "u1", day); err != nil || c != 300 {
		t.Errorf("Committed = %s, %v; want the reservations of both open rows", c, err)
	}
	err := l.Write(t.Context(), []*tollgate.UsageRecord{{RequestID: "old-a", Start: day, UserID: "u1"}}, nil)
	if tollgate.ErrorCode(err) != tollgate.EConflict {
		t.Errorf("Write(open old-a) = %v, want conflict", err)
	}
	s := &tollgate.UsageRecord{RequestID: "old-a", Start: day, UserID: "u1", End: day.Add(time.Second),
		Outcome: tollgate.ResultOK, Status: 200, Cost: 70, Settled: true}
	if err := l.Write(t.Context(), nil, []*tollgate.UsageRecord{s}); err != nil {
		t.Fatalf("Write(settle old-a): %v", err)
	}
	if r, err := l.Record(t.Context(), "old-a"); err != nil || !r.Settled || r.Cost != 70 || r.Reserved != 100 || r.Seq == 0 {
		t.Errorf("Record(old-a) = %+v, %v; want settled at 70 with its reservation kept", r, err)
	}
	got, err := l.Reconcile(t.Context(), day.Add(time.Hour), day.Add(time.Hour), true)
	if err != nil || len(got) != 1 || got[0].RequestID != "old-b" || got[0].Cost != 200 {
		t.Fatalf("Reconcile = %+v, %v; want old-b charged its reservation", got, err)
	}
	if r, err := l.Record(t.Context(), "old-b"); err != nil || !r.Settled || r.Outcome != tollgate.ResultUnknown {
		t.Errorf("Record(old-b) = %+v, %v", r, err)
	}
}

// TestLedgerOpensWithoutTheWriteLock: recording the open record of a call
// needs no SQLite write lock, so calls are admitted while a settlement's
// transaction (or another process) holds it.
func TestLedgerOpensWithoutTheWriteLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := Open(t.Context(), path, WithBusyTimeout(time.Millisecond))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	other := open(t, path)
	tx, err := other.write.BeginTx(t.Context(), nil) // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()

	l := db.Ledger()
	r := &tollgate.UsageRecord{RequestID: "a", Start: time.Now(), UserID: "u1", Reserved: 5}
	if err := l.Write(t.Context(), []*tollgate.UsageRecord{r}, nil); err != nil {
		t.Fatalf("Write(open) while another connection holds the write lock: %v", err)
	}
	if got, err := l.Record(t.Context(), "a"); err != nil || got.Settled || got.Reserved != 5 {
		t.Errorf("Record(a) = %+v, %v; want it open", got, err)
	}
	s := *r
	s.Settled, s.Outcome, s.End, s.Cost = true, tollgate.ResultOK, r.Start.Add(time.Second), 4
	if err := l.Write(t.Context(), nil, []*tollgate.UsageRecord{&s}); err == nil {
		t.Fatalf("Write(settle) succeeded while another connection holds the write lock")
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(t.Context(), nil, []*tollgate.UsageRecord{&s}); err != nil {
		t.Fatalf("Write(settle) after the lock was released: %v", err)
	}
	if got, err := l.Record(t.Context(), "a"); err != nil || !got.Settled || got.Cost != 4 {
		t.Errorf("Record(a) = %+v, %v; want it settled at 4", got, err)
	}
}

// TestLedgerSettlesABatchInChunks: a batch is inserted by statements of
// several sizes; every row keeps its own values and the batch's order.
func TestLedgerSettlesABatchInChunks(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "db"))
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	l := db.Ledger()
	n := upsertChunks()[0] + upsertChunks()[1] + 3 // every statement size, the largest first
	start := time.Date(2026, time.November, 3, 0, 0, 0, 0, time.UTC)
	var batch []*tollgate.UsageRecord
	for i := range n {
		batch = append(batch, &tollgate.UsageRecord{RequestID: fmt.Sprintf("r%03d", i), Start: start.Add(time.Duration(i) * time.Second),
			End: start.Add(time.Hour), UserID: fmt.Sprintf("u%d", i%3), Route: "chat", Outcome: tollgate.ResultOK,
			Status: 200 + i, BytesOut: int64(1000 * i), Cost: tollgate.Money(i), Reserved: 100, Settled: true})
	}
	if err := l.Write(t.Context(), nil, batch); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got, err := l.Export(t.Context(), 0, 2*n)
	if err != nil || len(got) != n {
		t.Fatalf("Export = %d records, %v; want %d", len(got), err, n)
	}
	for i, r := range got {
		want := fmt.Sprintf("r%03d", i)
		if r.RequestID != want || r.Seq != got[0].Seq+int64(i) || !r.Settled || r.Status != 200+i ||
			r.BytesOut != int64(1000*i) || r.Cost != tollgate.Money(i) || r.UserID != fmt.Sprintf("u%d", i%3) ||
			!r.Start.Equal(start.Add(time.Duration(i)*time.Second)) || !r.End.Equal(start.Add(time.Hour)) {
			t.Errorf("record %d = %+v; want %s as written, seq %d", i, r, want, got[0].Seq+int64(i))
		}
	}
}

// TestLedgerOpensDuringASettlementCommit: a call's open record, and the
// refusal of a duplicate id, do not wait for a settlement's commit (mu,
// held here as commitRows holds it across COMMIT).
func TestLedgerOpensDuringASettlementCommit(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "db"))
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	l := db.Ledger()
	start := time.Now()
	first := &tollgate.UsageRecord{RequestID: "a", Start: start, UserID: "u1", Reserved: 5}
	if err := l.Write(t.Context(), []*tollgate.UsageRecord{first}, nil); err != nil {
		t.Fatalf("Write(open a): %v", err)
	}
	l.mu.Lock()
	done := make(chan [2]error, 1)
	go func() {
		dup := l.Write(t.Context(), []*tollgate.UsageRecord{{RequestID: "a", Start: start, UserID: "u1"}}, nil)
		fresh := l.Write(t.Context(), []*tollgate.UsageRecord{{RequestID: "b", Start: start, UserID: "u1", Reserved: 7}}, nil)
		done <- [2]error{dup, fresh}
	}()
	select {
	case errs := <-done:
		l.mu.Unlock()
		if tollgate.ErrorCode(errs[0]) != tollgate.EConflict {
			t.Errorf("Write(open a again) = %v, want conflict", errs[0])
		}
		if errs[1] != nil {
			t.Errorf("Write(open b) = %v", errs[1])
		}
	case <-time.After(10 * time.Second):
		l.mu.Unlock()
		<-done
		t.Fatal("opening a record waited for the settlement's commit")
	}
	if got, err := l.Record(t.Context(), "b"); err != nil || got.Settled || got.Reserved != 7 {
		t.Errorf("Record(b) = %+v, %v; want it open", got, err)
	}
}

// TestLedgerSettlementIsAtomicForReaders: while records are settled one
// by one, Committed counts each either by its reservation (open) or by
// its cost (settled), never both and never neither, and Record finds it.
func TestLedgerSettlementIsAtomicForReaders(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "db"))
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	l := db.Ledger()
	const n, reserved, cost = 40, 100, 30
	since := time.Now().Add(-time.Minute)
	recs := make([]*tollgate.UsageRecord, n)
	for i := range recs {
		recs[i] = &tollgate.UsageRecord{RequestID: fmt.Sprintf("r%02d", i), Start: time.Now(), UserID: "u1", Reserved: reserved}
		if err := l.Write(t.Context(), []*tollgate.UsageRecord{recs[i]}, nil); err != nil {
			t.Fatalf("Write(open %d): %v", i, err)
		}
	}
	stop := make(chan struct{})
	bad := make(chan string, 1)
	go func() {
		defer close(bad)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := l.Committed(t.Context(), tollgate.ScopeUser, "u1", since)
			// k records settled: k*cost + (n-k)*reserved for some k.
			if err != nil || (n*reserved-int64(c))%(reserved-cost) != 0 {
				bad <- fmt.Sprintf("Committed = %s, %v: a record counted twice or not at all", c, err)
				return
			}
			for _, r := range recs {
				if _, err := l.Record(t.Context(), r.RequestID); err != nil {
					bad <- fmt.Sprintf("Record(%s): %v", r.RequestID, err)
					return
				}
			}
		}
	}()
	for _, r := range recs {
		s := *r
		s.Settled, s.Outcome, s.End, s.Cost = true, tollgate.ResultOK, r.Start.Add(time.Second), cost
		if err := l.Write(t.Context(), nil, []*tollgate.UsageRecord{&s}); err != nil {
			t.Fatalf("Write(settle %s): %v", r.RequestID, err)
		}
	}
	close(stop)
	if msg, ok := <-bad; ok {
		t.Fatal(msg)
	}
	if c, err := l.Committed(t.Context(), tollgate.ScopeUser, "u1", since); err != nil || c != n*cost {
		t.Errorf("Committed after settling = %s, %v; want %d", c, err, n*cost)
	}
}

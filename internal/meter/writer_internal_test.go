package meter

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/sqlite"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// countingLedger is the SQLite ledger, counting the records of each open
// write.
type countingLedger struct {
	tollgate.Ledger
	mu      sync.Mutex
	batches []int
	written map[string]int
}

func (l *countingLedger) Write(ctx context.Context, open, settled []*tollgate.UsageRecord) error {
	err := l.Ledger.Write(ctx, open, settled)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(open) > 0 {
		l.batches = append(l.batches, len(open))
	}
	if err == nil {
		for _, r := range open {
			l.written[r.RequestID]++
		}
	}
	return err
}

func setupWriter(t *testing.T, maxBatch int) (*writer, *countingLedger) {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "tollgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	l := &countingLedger{Ledger: db.Ledger(), written: map[string]int{}}
	w := newWriter(l, slog.New(slog.DiscardHandler), maxBatch, time.Millisecond)
	w.start()
	t.Cleanup(w.stopAndFlush)
	return w, l
}

// TestWriterGroupCommit: 400 concurrent open records are each written
// exactly once, in shared writes no larger than maxBatch; a record that
// conflicts fails alone, and after stop a record is refused.
func TestWriterGroupCommit(t *testing.T) {
	w, l := setupWriter(t, 16)
	start := time.Date(2026, time.November, 23, 0, 0, 0, 0, time.UTC)
	errs := make([]error, 400)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			id := fmt.Sprintf("req-%03d", i)
			if i%100 == 99 {
				id = "dup" // four records share an id: one is written, three fail
			}
			errs[i] = w.open(t.Context(), &tollgate.UsageRecord{RequestID: id, Start: start, UserID: "u1"})
		})
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		switch {
		case err == nil:
		case i%100 == 99 && tollgate.ErrorCode(err) == tollgate.EConflict:
			failed++
		default:
			t.Errorf("open %d: %v", i, err)
		}
	}
	if failed != 3 {
		t.Errorf("%d of the four records with one id failed, want 3", failed)
	}
	shared := 0
	for id, n := range l.written {
		if n != 1 {
			t.Errorf("record %s written %d times", id, n)
		}
	}
	if len(l.written) != 397 {
		t.Errorf("%d records written, want 397", len(l.written))
	}
	for _, n := range l.batches {
		if n > 16 {
			t.Errorf("a write of %d records, over maxBatch 16", n)
		}
		if n > 1 {
			shared++
		}
	}
	if shared == 0 {
		t.Errorf("400 concurrent records were written one per write (%d writes): no group commit", len(l.batches))
	}
	w.stopAndFlush()
	if err := w.open(t.Context(), &tollgate.UsageRecord{RequestID: "late", Start: start}); tollgate.ErrorCode(err) != tollgate.EUnavailable {
		t.Errorf("open after stop: %v, want unavailable", err)
	}
}

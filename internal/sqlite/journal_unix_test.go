//go:build unix

package sqlite_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/sqlite"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestJournalMapped(t *testing.T) {
	t.Run("SegmentIsSizedUpFrontAndCutAtClose", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tollgate.db")
		db := mustOpenAt(t, path, sqlite.WithJournalSegmentSize(8192))
		mustWrite(t, db.Ledger(), []*tollgate.UsageRecord{openRec("a", 0, 5)}, nil)
		files := journalFiles(t, path)
		if len(files) != 1 {
			t.Fatalf("journal files %v, want one", files)
		}
		if fi, err := os.Stat(files[0]); err != nil || fi.Size() != 8192 {
			t.Fatalf("live segment: %v, %v; want 8192 bytes", fi, err)
		}
		mustClose(t, db)
		data, err := os.ReadFile(files[0])
		if err != nil || len(data) == 0 || len(data) > 200 || data[len(data)-1] != '\n' {
			t.Fatalf("segment closed with a record open holds %q, %v; want its one line", data, err)
		}
		got, err := mustOpenAt(t, path).Ledger().Reconcile(t.Context(), t0.Add(time.Hour), t0.Add(time.Hour), true)
		if err != nil || len(got) != 1 || got[0].RequestID != "a" {
			t.Fatalf("Reconcile = %+v, %v; want a", got, err)
		}
	})

	t.Run("AFaultInTheMappingIsAnError", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tollgate.db")
		l := mustOpenAt(t, path, sqlite.WithJournalSegmentSize(8192)).Ledger()
		mustWrite(t, l, []*tollgate.UsageRecord{openRec("a", 0, 5)}, nil)
		files := journalFiles(t, path)
		// Cut short under the mapping, as a full disk leaves a page it
		// could not allocate: writing there faults.
		if err := os.Truncate(files[0], 0); err != nil {
			t.Fatal(err)
		}
		if err := l.Write(t.Context(), []*tollgate.UsageRecord{openRec("b", 0, 5)}, nil); err == nil {
			t.Fatalf("Write into a segment cut short = nil, want an error")
		}
		if _, err := l.Record(t.Context(), "b"); tollgate.ErrorCode(err) != tollgate.ENotFound {
			t.Errorf("Record(b) after its write failed = %v, want not found", err)
		}
		mustWrite(t, l, []*tollgate.UsageRecord{openRec("c", 0, 5)}, nil)
		if n := len(journalFiles(t, path)); n != 2 {
			t.Errorf("%d journal files, want the broken segment and a new one", n)
		}
		got, err := mustOpenAt(t, path).Ledger().Reconcile(t.Context(), t0.Add(time.Hour), t0.Add(time.Hour), true)
		if err != nil || len(got) != 1 || got[0].RequestID != "c" {
			t.Fatalf("Reconcile = %+v, %v; want c, the record written after the fault", got, err)
		}
	})
}

// TestJournalBacksOff: a journal that keeps failing to write stops trying
// on every call: calls are refused at once with EUnavailable and a
// Retry-After until the next attempt is due, and then it writes again.
func TestJournalBacksOff(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tollgate.db")
	clk := &clock{now: t0}
	l := mustOpenAt(t, path, sqlite.WithJournalSegmentSize(8192), sqlite.WithClock(clk.Now)).Ledger()
	mustWrite(t, l, []*tollgate.UsageRecord{openRec("a", 0, 5)}, nil)
	// The segment faults (cut short under its mapping), and no new one can
	// be created: every segment number it would try is taken.
	if err := os.Truncate(journalFiles(t, path)[0], 0); err != nil {
		t.Fatal(err)
	}
	next := lastSegment(t, path) + 1
	var blockers []string
	for n := next; n < next+64; n++ {
		b := fmt.Sprintf("%s-open.%d.journal", path, n)
		if err := os.Mkdir(b, 0o700); err != nil {
			t.Fatal(err)
		}
		blockers = append(blockers, b)
	}
	write := func(id string) error {
		return l.Write(t.Context(), []*tollgate.UsageRecord{openRec(id, 0, 5)}, nil)
	}
	for i := range 3 {
		err := write(fmt.Sprintf("refused%d", i))
		if tollgate.ErrorCode(err) != tollgate.EUnavailable || retryAfter(err) < 1 {
			t.Fatalf("write %d while the journal cannot write = %v; want %s with a Retry-After", i, err, tollgate.EUnavailable)
		}
	}
	// Room again, but the back-off is not over: still refused, and
	// nothing was tried (a new segment would be created past the blockers).
	for _, b := range blockers {
		if err := os.Remove(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := write("early"); tollgate.ErrorCode(err) != tollgate.EUnavailable {
		t.Fatalf("write before the back-off ends = %v, want %s", err, tollgate.EUnavailable)
	}
	if err := l.Writable(t.Context()); tollgate.ErrorCode(err) != tollgate.EUnavailable {
		t.Fatalf("Writable before the back-off ends = %v, want %s", err, tollgate.EUnavailable)
	}
	clk.Advance(6 * time.Second)
	mustWrite(t, l, []*tollgate.UsageRecord{openRec("b", 0, 5)}, nil)
	if err := l.Writable(t.Context()); err != nil {
		t.Fatalf("Writable after a write succeeded = %v", err)
	}
	got, err := mustOpenAt(t, path).Ledger().Reconcile(t.Context(), t0.Add(time.Hour), t0.Add(time.Hour), true)
	if err != nil || len(got) != 1 || got[0].RequestID != "b" {
		t.Fatalf("Reconcile = %+v, %v; want b alone: refused calls leave no record", got, err)
	}
}

//go:build unix

package sqlite_test

import (
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

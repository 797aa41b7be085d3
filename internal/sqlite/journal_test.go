package sqlite_test

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/sqlite"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// mustOpenAt opens and migrates the database at path; it is closed at the
// end of the test.
func mustOpenAt(tb testing.TB, path string, opts ...sqlite.Option) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(tb.Context(), path, opts...)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(tb.Context()); err != nil {
		tb.Fatalf("Migrate: %v", err)
	}
	return db
}

// journalFiles lists the journal segments beside the database at path.
func journalFiles(tb testing.TB, path string) []string {
	tb.Helper()
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), filepath.Base(path)+"-open.") {
			out = append(out, filepath.Join(filepath.Dir(path), e.Name()))
		}
	}
	return out
}

// clock is a settable clock for the journal's back-off.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func retryAfter(err error) int {
	var e *tollgate.Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// lastSegment returns the highest number of the journal segments beside
// the database at path.
func lastSegment(tb testing.TB, path string) int {
	tb.Helper()
	last := 0
	for _, f := range journalFiles(tb, path) {
		var n int
		if _, err := fmt.Sscanf(strings.TrimPrefix(filepath.Base(f), filepath.Base(path)+"-open."), "%d.journal", &n); err == nil {
			last = max(last, n)
		}
	}
	return last
}

var t0 = time.Date(2026, time.November, 3, 12, 0, 0, 0, time.UTC)

func openRec(id string, start time.Duration, reserved tollgate.Money) *tollgate.UsageRecord {
	return &tollgate.UsageRecord{RequestID: id, Start: t0.Add(start), UserID: "u1", TenantID: "t1",
		Route: "chat", Model: "m1", BytesIn: 100, Reserved: reserved}
}

func settled(r *tollgate.UsageRecord, cost tollgate.Money) *tollgate.UsageRecord {
	s := *r
	s.End, s.Outcome, s.Status, s.Settled, s.Cost = r.Start.Add(time.Second), tollgate.ResultOK, 200, true, cost
	return &s
}

func mustWrite(tb testing.TB, l *sqlite.Ledger, open, settle []*tollgate.UsageRecord) {
	tb.Helper()
	if err := l.Write(tb.Context(), open, settle); err != nil {
		tb.Fatalf("Write: %v", err)
	}
}

func TestJournal(t *testing.T) {
	t.Run("OpenRecordsSurviveACrash", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tollgate.db")
		dead := mustOpenAt(t, path).Ledger()
		a, b, late := openRec("a", 0, 700), openRec("b", time.Second, 300), openRec("late", time.Hour, 900)
		done := openRec("done", 0, 50)
		mustWrite(t, dead, []*tollgate.UsageRecord{a, b, late, done}, nil)
		mustWrite(t, dead, nil, []*tollgate.UsageRecord{settled(done, 40)})
		// The process dies here: nothing settles a, b or late.

		l := mustOpenAt(t, path).Ledger()
		at := t0.Add(time.Minute)
		got, err := l.Reconcile(t.Context(), t0.Add(time.Minute), at, true)
		if err != nil {
			t.Fatalf("Reconcile: %v", err)
		}
		var ids []string
		for _, r := range got {
			ids = append(ids, r.RequestID)
		}
		if !slices.Equal(ids, []string{"a", "b"}) {
			t.Fatalf("reconciled %v, want [a b]", ids)
		}
		for id, reserved := range map[string]tollgate.Money{"a": 700, "b": 300} {
			rec, err := l.Record(t.Context(), id)
			if err != nil || !rec.Settled || rec.Outcome != tollgate.ResultUnknown || rec.Cost != reserved ||
				rec.Seq == 0 || rec.UserID != "u1" || !rec.End.Equal(at) {
				t.Errorf("Record(%s) = %+v, %v; want settled unknown at cost %s", id, rec, err, reserved)
			}
		}
		if rec, err := l.Record(t.Context(), "done"); err != nil || rec.Cost != 40 || rec.Outcome != tollgate.ResultOK {
			t.Errorf("Record(done) = %+v, %v; want its own settlement", rec, err)
		}
		if _, err := l.Record(t.Context(), "late"); tollgate.ErrorCode(err) != tollgate.ENotFound {
			t.Errorf("Record(late) before it is reconciled = %v, want not found", err)
		}
		if files := journalFiles(t, path); len(files) != 1 {
			t.Errorf("journal files %v, want the dead process's segment kept for the late record", files)
		}

		got, err = l.Reconcile(t.Context(), t0.Add(2*time.Hour), at, false)
		if err != nil || len(got) != 1 || got[0].RequestID != "late" || got[0].Cost != 0 {
			t.Fatalf("second Reconcile = %+v, %v; want late at no cost", got, err)
		}
		if files := journalFiles(t, path); len(files) != 0 {
			t.Errorf("journal files %v after every record was settled, want none", files)
		}
		if got, err := l.Reconcile(t.Context(), t0.Add(2*time.Hour), at, true); err != nil || len(got) != 0 {
			t.Errorf("Reconcile with nothing left = %v, %v", got, err)
		}
	})

	// A segment of a killed process has a zero-filled tail on systems
	// that map it; one closed cleanly, or written by an earlier version,
	// ends with its last line.
	for _, closed := range []bool{false, true} {
		t.Run(fmt.Sprintf("CutLastLineIsSkipped/closed=%v", closed), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tollgate.db")
			db := mustOpenAt(t, path)
			mustWrite(t, db.Ledger(), []*tollgate.UsageRecord{openRec("a", 0, 5), openRec("b", 0, 6)}, nil)
			if closed {
				mustClose(t, db)
			}
			files := journalFiles(t, path)
			if len(files) != 1 {
				t.Fatalf("journal files %v, want one", files)
			}
			appendLines(t, files[0], `{"id":"c","start":17`)

			got, err := mustOpenAt(t, path).Ledger().Reconcile(t.Context(), t0.Add(time.Hour), t0.Add(time.Hour), true)
			if err != nil || len(got) != 2 {
				t.Fatalf("Reconcile = %+v, %v; want a and b", got, err)
			}
		})

		t.Run(fmt.Sprintf("MalformedLineBeforeTheLastIsAnError/closed=%v", closed), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tollgate.db")
			db := mustOpenAt(t, path)
			mustWrite(t, db.Ledger(), []*tollgate.UsageRecord{openRec("a", 0, 5)}, nil)
			if closed {
				mustClose(t, db)
			}
			files := journalFiles(t, path)
			appendLines(t, files[0], "garbage\n"+`{"id":"b","start":1}`+"\n")

			if _, err := mustOpenAt(t, path).Ledger().Reconcile(t.Context(), t0.Add(time.Hour), t0.Add(time.Hour), true); err == nil {
				t.Fatalf("Reconcile of a corrupt journal succeeded; want an error, not lost records")
			}
			if files := journalFiles(t, path); len(files) != 1 {
				t.Errorf("journal files %v, want the corrupt segment kept", files)
			}
		})
	}

	t.Run("SegmentsRotateAndGoOnceSettled", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tollgate.db")
		db := mustOpenAt(t, path, sqlite.WithJournalSegmentSize(512))
		l := db.Ledger()
		var recs []*tollgate.UsageRecord
		for i := range 40 {
			r := openRec(fmt.Sprintf("r%02d", i), time.Duration(i)*time.Second, 10)
			recs = append(recs, r)
			mustWrite(t, l, []*tollgate.UsageRecord{r}, nil)
		}
		files := journalFiles(t, path)
		if len(files) < 4 {
			t.Fatalf("%d journal files after 40 records in 512-byte segments, want several", len(files))
		}
		slices.SortFunc(files, func(a, b string) int { // by number: the current one last
			return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b))
		})
		for _, f := range files[:len(files)-1] {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) == 0 || bytes.IndexByte(data, 0) >= 0 || data[len(data)-1] != '\n' {
				t.Errorf("segment %s moved on from holds %q, want its lines only", f, data)
			}
		}
		// Settle all but the first record: only its segment stays.
		for _, r := range recs[1:] {
			mustWrite(t, l, nil, []*tollgate.UsageRecord{settled(r, 1)})
		}
		if files := journalFiles(t, path); len(files) > 2 {
			t.Errorf("journal files %v with one record open, want its segment (and the current one)", files)
		}
		if c, err := l.Committed(t.Context(), tollgate.ScopeUser, "u1", t0); err != nil || c != 39+10 {
			t.Errorf("Committed = %s, %v; want 39 settled plus 10 reserved", c, err)
		}
		mustWrite(t, l, nil, []*tollgate.UsageRecord{settled(recs[0], 1)})
		if files := journalFiles(t, path); len(files) > 1 {
			t.Errorf("journal files %v with nothing open, want at most the current one", files)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if files := journalFiles(t, path); len(files) != 0 {
			t.Errorf("journal files %v after a clean close with nothing open, want none", files)
		}
	})

	t.Run("BatchLargerThanASegment", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tollgate.db")
		l := mustOpenAt(t, path, sqlite.WithJournalSegmentSize(512)).Ledger()
		mustWrite(t, l, []*tollgate.UsageRecord{openRec("first", 0, 1)}, nil)
		var batch []*tollgate.UsageRecord
		for i := range 20 {
			batch = append(batch, openRec(fmt.Sprintf("r%02d", i), time.Second, 1))
		}
		mustWrite(t, l, batch, nil)
		mustWrite(t, l, []*tollgate.UsageRecord{openRec("last", 0, 1)}, nil)

		got, err := mustOpenAt(t, path).Ledger().Reconcile(t.Context(), t0.Add(time.Hour), t0.Add(time.Hour), true)
		if err != nil || len(got) != 22 {
			t.Fatalf("Reconcile = %d records, %v; want 22", len(got), err)
		}
	})

	t.Run("ReadersCreateNoJournal", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tollgate.db")
		server := mustOpenAt(t, path).Ledger()
		r := openRec("a", 0, 5)
		mustWrite(t, server, []*tollgate.UsageRecord{r}, nil)
		before := journalFiles(t, path)

		cli := mustOpenAt(t, path)
		l := cli.Ledger()
		if _, err := l.Export(t.Context(), 0, 10); err != nil {
			t.Fatalf("Export: %v", err)
		}
		if _, err := l.Usage(t.Context(), tollgate.UsageQuery{GroupBy: tollgate.GroupUser}); err != nil {
			t.Fatalf("Usage: %v", err)
		}
		if _, err := l.Committed(t.Context(), tollgate.ScopeUser, "u1", t0); err != nil {
			t.Fatalf("Committed: %v", err)
		}
		if _, err := l.Record(t.Context(), "a"); tollgate.ErrorCode(err) != tollgate.ENotFound {
			t.Errorf("Record of another process's open record = %v, want not found", err)
		}
		if err := cli.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if after := journalFiles(t, path); !slices.Equal(after, before) {
			t.Errorf("journal files %v after a reader came and went, want %v", after, before)
		}
		// The server's record is still open and settles as usual.
		mustWrite(t, server, nil, []*tollgate.UsageRecord{settled(r, 3)})
		if rec, err := server.Record(t.Context(), "a"); err != nil || rec.Cost != 3 {
			t.Errorf("Record(a) = %+v, %v", rec, err)
		}
	})

	t.Run("ReopeningASettledRecordConflicts", func(t *testing.T) {
		l := MustOpen(t).Ledger()
		r := openRec("a", 0, 5)
		mustWrite(t, l, []*tollgate.UsageRecord{r}, []*tollgate.UsageRecord{settled(r, 4)})
		err := l.Write(t.Context(), []*tollgate.UsageRecord{openRec("a", time.Hour, 9)}, nil)
		if tollgate.ErrorCode(err) != tollgate.EConflict {
			t.Fatalf("Write(open a again) = %v, want conflict", err)
		}
		if rec, err := l.Record(t.Context(), "a"); err != nil || !rec.Settled || rec.Cost != 4 {
			t.Errorf("Record(a) = %+v, %v; want the settled record unchanged", rec, err)
		}
	})
}

// appendLines writes s where the next line of the segment at path would
// go: at its first zero byte (the unused tail of a mapped segment), or at
// its end.
func appendLines(tb testing.TB, path, s string) {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	end := bytes.IndexByte(data, 0)
	if end < 0 {
		end = len(data)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(s), int64(end)); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

func mustClose(tb testing.TB, db *sqlite.DB) {
	tb.Helper()
	if err := db.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
}

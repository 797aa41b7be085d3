package sqlite_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/sqlite"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// mustTmpfs mounts a tmpfs of size (e.g. "2m") on a fresh directory, so a
// test can fill a disk for real; it skips when mounting is not allowed.
func mustTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (%v: %s); TestJournalBacksOff covers the back-off with an injected fault", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes path until the disk is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 16<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			return
		}
	}
}

func TestJournalOnAFullDisk(t *testing.T) {
	dir := mustTmpfs(t, "4m")
	path := filepath.Join(dir, "tollgate.db")
	clk := &clock{now: t0}
	l := mustOpenAt(t, path, sqlite.WithJournalSegmentSize(64<<10), sqlite.WithClock(clk.Now)).Ledger()
	mustWrite(t, l, []*tollgate.UsageRecord{openRec("before", 0, 5)}, nil)
	fill(t, filepath.Join(dir, "filler"))

	// The current segment was allocated up front: calls go on until it is
	// full, then the next segment cannot be created.
	var err error
	var accepted []string
	for i := range 10_000 {
		id := fmt.Sprintf("r%d", i)
		if err = l.Write(t.Context(), []*tollgate.UsageRecord{openRec(id, 0, 5)}, nil); err != nil {
			break
		}
		accepted = append(accepted, id)
	}
	if tollgate.ErrorCode(err) != tollgate.EUnavailable || retryAfter(err) < 1 {
		t.Fatalf("Write on a full disk = %v; want %s with a Retry-After", err, tollgate.EUnavailable)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Write on a full disk = %v; want the cause (no space) kept for the log", err)
	}
	files := len(journalFiles(t, path))
	for i := range 1000 {
		err := l.Write(t.Context(), []*tollgate.UsageRecord{openRec(fmt.Sprintf("refused%d", i), 0, 5)}, nil)
		if tollgate.ErrorCode(err) != tollgate.EUnavailable {
			t.Fatalf("call %d on a full disk: %v, want %s", i, err, tollgate.EUnavailable)
		}
		clk.Advance(time.Millisecond)
	}
	if n := len(journalFiles(t, path)); n != files {
		t.Errorf("1000 calls on a full disk left %d journal files, had %d: want no file per call", n, files)
	}
	if err := l.Writable(t.Context()); tollgate.ErrorCode(err) != tollgate.EUnavailable {
		t.Errorf("Writable on a full disk = %v, want %s", err, tollgate.EUnavailable)
	}

	// Space comes back: once the back-off is over, the ledger writes
	// again without losing what it had accepted.
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Second)
	if err := l.Writable(t.Context()); err != nil {
		t.Fatalf("Writable once space is back = %v, want nil", err)
	}
	mustWrite(t, l, []*tollgate.UsageRecord{openRec("after", 0, 5)}, nil)
	// 1000 calls over 1 s of back-off (doubling from 100 ms) allow a
	// handful of attempts to create a segment, not one per call.
	if n := lastSegment(t, path); n > 10 {
		t.Errorf("the segment written after the full disk is number %d: segments were tried for every refused call", n)
	}
	for _, id := range append([]string{"before", "after"}, accepted...) {
		if _, err := l.Record(t.Context(), id); err != nil {
			t.Fatalf("Record(%s) accepted before or after the full disk: %v", id, err)
		}
	}
	if _, err := l.Record(t.Context(), "refused0"); tollgate.ErrorCode(err) != tollgate.ENotFound {
		t.Errorf("Record of a refused call = %v, want not found", err)
	}
}

func TestSettlingOnAFullDisk(t *testing.T) {
	dir := mustTmpfs(t, "4m")
	path := filepath.Join(dir, "tollgate.db")
	l := mustOpenAt(t, path, sqlite.WithJournalSegmentSize(64<<10)).Ledger()
	recs := make([]*tollgate.UsageRecord, 200)
	for i := range recs {
		recs[i] = openRec(fmt.Sprintf("r%d", i), 0, 5)
	}
	mustWrite(t, l, recs, nil)
	fill(t, filepath.Join(dir, "filler"))
	var err error
	for i := 0; i < len(recs) && err == nil; i += 10 {
		var batch []*tollgate.UsageRecord
		for _, r := range recs[i : i+10] {
			batch = append(batch, settled(r, 4))
		}
		err = l.Write(t.Context(), nil, batch)
	}
	if err == nil {
		t.Skip("SQLite found room for every settlement on the full disk (its WAL had space); nothing to check")
	}
	if tollgate.ErrorCode(err) != tollgate.EUnavailable {
		t.Fatalf("settling on a full disk = %v, want %s", err, tollgate.EUnavailable)
	}
}

func TestStoreWritesOnAFullDisk(t *testing.T) {
	dir := mustTmpfs(t, "4m")
	db := mustOpenAt(t, filepath.Join(dir, "tollgate.db"))
	fill(t, filepath.Join(dir, "filler"))
	var err error
	for i := 0; i < 5000 && err == nil; i++ {
		err = db.Tenants().CreateTenant(t.Context(), &tollgate.Tenant{Name: fmt.Sprintf("tenant-%d-%s", i, strings.Repeat("x", 200))})
	}
	if err == nil {
		t.Skip("SQLite found room for every write on the full disk (its WAL had space); nothing to check")
	}
	if tollgate.ErrorCode(err) != tollgate.EUnavailable || retryAfter(err) < 1 {
		t.Fatalf("a write on a full disk = %v, want %s with a Retry-After", err, tollgate.EUnavailable)
	}
}

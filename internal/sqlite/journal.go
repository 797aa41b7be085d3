package sqlite

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// The open-record journal keeps the records a call appends before it is
// forwarded out of SQLite: one JSON line per record in append-only segment
// files beside the database, named <db>-open.<n>.journal. Each Write appends
// its open records, with no fsync, into a shared mapping of a segment sized
// up front (journal_unix.go), or with a single write(2) elsewhere
// (journal_other.go): what the kernel accepted survives a SIGKILL of the
// process, but an OS crash or power loss may lose the open records of its
// last moments (settled records are in SQLite, whose WAL is synced at
// checkpoints, synchronous=NORMAL). A segment ends at its first zero byte:
// past it is the unused, zero-filled rest of a mapped segment. A process
// only ever appends to segments it created; segments on disk that it did
// not create were left by a stopped process and are consumed by Reconcile.

// defaultSegmentSize is the size of a journal segment: the journal moves on
// to a new one when a batch would not fit.
const defaultSegmentSize = 4 << 20

// A journal that cannot create or write a segment (the disk is full) backs
// off: the first failure may be retried at once, each further one doubles
// the wait from minRetry up to maxRetry. Meanwhile appends fail at once with
// EUnavailable, touching no file, so a full disk costs no file per call.
const (
	minRetry = 100 * time.Millisecond
	maxRetry = 5 * time.Second
)

// maxCreateAttempts bounds the segment numbers tried in one create, when
// other processes hold the next ones.
const maxCreateAttempts = 64

// segment is one journal file and how many of its records are still open.
type segment struct {
	n    uint64
	path string
	open int
}

// journal is the live journal of this process. Its methods are safe for
// concurrent use: a settlement releases records while a new batch is
// appended.
type journal struct {
	mu      sync.Mutex
	prefix  string // <db>-open.
	maxSize int64
	next    uint64 // number of the next segment to create
	cur     *segment
	f       *segmentFile        // the current segment, nil until the first append
	size    int64               // bytes of lines in f
	segs    map[uint64]*segment // this process's segments with open records, and cur
	buf     []byte

	now      func() time.Time
	failures int       // consecutive failures to create or write a segment
	retryAt  time.Time // no segment is created before it while failures > 0
	lastErr  error     // the last of those failures
}

func newJournal(dbPath string, maxSize int64, now func() time.Time) *journal {
	return &journal{prefix: dbPath + "-open.", maxSize: maxSize, segs: map[uint64]*segment{}, now: now}
}

// failed records a failure to create or write a segment and schedules the
// next attempt.
func (j *journal) failed(err error) {
	j.failures++
	j.lastErr = err
	var wait time.Duration
	if j.failures > 1 {
		wait = min(minRetry<<min(j.failures-2, 16), maxRetry)
	}
	j.retryAt = j.now().Add(wait)
}

// unavailable is the error of an append refused while the journal cannot
// write: the caller may retry once the next attempt is due.
func (j *journal) unavailable(err error) error {
	wait := j.retryAt.Sub(j.now())
	return tollgate.Unavailable(err, int((wait+time.Second-1)/time.Second),
		"usage cannot be recorded right now (the ledger cannot write); try again shortly")
}

// writable reports why the journal cannot take an append now, or nil.
// While it backs off and the next attempt is due, it tries to create the
// segment the next append would use, so it recovers without traffic.
func (j *journal) writable() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failures == 0 || j.f != nil {
		return nil
	}
	if !j.now().Before(j.retryAt) {
		err := j.create(j.maxSize)
		if err == nil {
			return nil
		}
		j.failed(err)
	}
	return j.unavailable(j.lastErr)
}

// segmentFiles lists the journal segments on disk, by number.
func segmentFiles(prefix string) (map[uint64]string, error) {
	dir, base := filepath.Split(prefix)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list journal: %w", err)
	}
	out := map[uint64]string{}
	for _, e := range entries {
		name := e.Name()
		num, ok := strings.CutPrefix(name, base)
		if !ok || e.IsDir() {
			continue
		}
		num, ok = strings.CutSuffix(num, ".journal")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			continue
		}
		out[n] = filepath.Join(dir, name)
	}
	return out, nil
}

// foreign lists the segments on disk that this process did not create.
func (j *journal) foreign() (map[uint64]string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	files, err := segmentFiles(j.prefix)
	if err != nil {
		return nil, err
	}
	for n := range files {
		if _, ours := j.segs[n]; ours || n >= j.next && j.next > 0 {
			delete(files, n)
		}
	}
	return files, nil
}

// append writes recs to the current segment and returns the segment that
// holds them, counted open, moving on to a new segment first when the
// current one is full. A failed write leaves no partial line in front of
// later ones: a segment that may end in one takes no more lines.
func (j *journal) append(recs []*tollgate.UsageRecord) (*segment, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf = j.buf[:0]
	for _, r := range recs {
		j.buf = appendEntry(j.buf, r)
	}
	if j.f != nil && (j.size >= j.maxSize || !j.f.fits(j.size, len(j.buf))) {
		if err := j.closeCurrent(); err != nil {
			return nil, err
		}
	}
	if j.f == nil {
		if j.failures > 0 && j.now().Before(j.retryAt) {
			return nil, j.unavailable(j.lastErr)
		}
		if err := j.create(max(j.maxSize, int64(len(j.buf)))); err != nil {
			j.failed(err)
			return nil, j.unavailable(err)
		}
	}
	usable, err := j.f.write(j.size, j.buf)
	if err != nil {
		err = fmt.Errorf("append usage journal: %w", err)
		if !usable {
			_ = j.closeCurrent()
			j.failed(err)
			return nil, j.unavailable(err)
		}
		return nil, err
	}
	j.failures, j.lastErr = 0, nil
	j.size += int64(len(j.buf))
	j.cur.open += len(recs)
	return j.cur, nil
}

// closeCurrent closes the current segment, which is removed once none of
// its records is open.
func (j *journal) closeCurrent() error {
	old, f := j.cur, j.f
	j.f, j.cur = nil, nil
	err := f.close(j.size)
	j.releaseLocked(old, 0)
	if err != nil {
		return fmt.Errorf("close usage journal: %w", err)
	}
	return nil
}

// create opens a new current segment of size bytes, numbered after every
// segment on disk.
func (j *journal) create(size int64) error {
	if j.next == 0 {
		files, err := segmentFiles(j.prefix)
		if err != nil {
			return err
		}
		j.next = 1
		for n := range files {
			j.next = max(j.next, n+1)
		}
	}
	for range maxCreateAttempts {
		s := &segment{n: j.next, path: j.prefix + strconv.FormatUint(j.next, 10) + ".journal"}
		f, err := createSegmentFile(s.path, size)
		j.next++
		if errors.Is(err, fs.ErrExist) {
			continue // another process's segment: never append to it
		}
		if err != nil {
			return fmt.Errorf("create usage journal: %w", err)
		}
		j.f, j.cur, j.size = f, s, 0
		j.segs[s.n] = s
		return nil
	}
	return fmt.Errorf("create usage journal: %d segment numbers after %d are taken", maxCreateAttempts, j.next-maxCreateAttempts)
}

// release marks k records of s settled and deletes s once it holds no
// open record and is not the current segment.
func (j *journal) release(s *segment, k int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.releaseLocked(s, k)
}

func (j *journal) releaseLocked(s *segment, k int) {
	s.open -= k
	if s.open > 0 || s == j.cur {
		return
	}
	delete(j.segs, s.n)
	// A segment that cannot be removed is read again by the next
	// Reconcile, which finds its records settled and removes it.
	_ = removeFile(s.path)
}

// close closes the current segment, and removes it when none of its
// records is open.
func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	s := j.cur
	err := j.f.close(j.size)
	j.f, j.cur = nil, nil
	if s.open == 0 {
		delete(j.segs, s.n)
		err = errors.Join(err, removeFile(s.path))
	}
	if err != nil {
		return fmt.Errorf("close usage journal: %w", err)
	}
	return nil
}

// entry is the journal line of one open record. Times are microseconds
// since the Unix epoch; zero values are left out.
type entry struct {
	ID        string `json:"id"`
	Start     int64  `json:"start"`
	End       int64  `json:"end,omitempty"`
	TenantID  string `json:"tenant,omitempty"`
	UserID    string `json:"user,omitempty"`
	Route     string `json:"route,omitempty"`
	Model     string `json:"model,omitempty"`
	Outcome   string `json:"outcome,omitempty"`
	Status    int    `json:"status,omitempty"`
	BytesIn   int64  `json:"in,omitempty"`
	BytesOut  int64  `json:"out,omitempty"`
	LatencyMS int64  `json:"ms,omitempty"`
	InTok     int64  `json:"itok,omitempty"`
	OutTok    int64  `json:"otok,omitempty"`
	Images    int64  `json:"img,omitempty"`
	MPMillis  int64  `json:"mpx,omitempty"`
	Audio     int64  `json:"audio,omitempty"`
	GPU       int64  `json:"gpu,omitempty"`
	Cost      int64  `json:"cost,omitempty"`
	Reserved  int64  `json:"reserved,omitempty"`
	Replica   string `json:"replica,omitempty"`
}

func (e *entry) record() *tollgate.UsageRecord {
	r := &tollgate.UsageRecord{RequestID: e.ID, Start: time.UnixMicro(e.Start).UTC(), TenantID: e.TenantID,
		UserID: e.UserID, Route: e.Route, Model: e.Model, Outcome: e.Outcome, Status: e.Status,
		BytesIn: e.BytesIn, BytesOut: e.BytesOut, LatencyMS: e.LatencyMS,
		Units: tollgate.Units{InputTokens: e.InTok, OutputTokens: e.OutTok, Images: e.Images,
			MegapixelMillis: e.MPMillis, AudioMillis: e.Audio, GPUMillis: e.GPU},
		Cost: tollgate.Money(e.Cost), Reserved: tollgate.Money(e.Reserved), Replica: e.Replica}
	if e.End != 0 {
		r.End = time.UnixMicro(e.End).UTC()
	}
	r.Units.Megapixels = float64(r.Units.MegapixelMillis) / 1000
	return r
}

// stored returns r as it reads back from the journal: times in UTC
// microseconds, Megapixels derived, not settled.
func stored(r *tollgate.UsageRecord) *tollgate.UsageRecord {
	e := toEntry(r)
	return e.record()
}

func toEntry(r *tollgate.UsageRecord) entry {
	e := entry{ID: r.RequestID, Start: r.Start.UnixMicro(), TenantID: r.TenantID, UserID: r.UserID,
		Route: r.Route, Model: r.Model, Outcome: r.Outcome, Status: r.Status, BytesIn: r.BytesIn,
		BytesOut: r.BytesOut, LatencyMS: r.LatencyMS, InTok: r.Units.InputTokens, OutTok: r.Units.OutputTokens,
		Images: r.Units.Images, MPMillis: r.Units.MegapixelMillis, Audio: r.Units.AudioMillis,
		GPU: r.Units.GPUMillis, Cost: int64(r.Cost), Reserved: int64(r.Reserved), Replica: r.Replica}
	if !r.End.IsZero() {
		e.End = r.End.UnixMicro()
	}
	return e
}

// appendEntry appends r's journal line to b. It writes the JSON by hand
// for the common fields, the hot path of every call.
func appendEntry(b []byte, r *tollgate.UsageRecord) []byte {
	e := toEntry(r)
	b = append(b, `{"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"start":`...)
	b = strconv.AppendInt(b, e.Start, 10)
	for _, f := range [...]struct {
		key string
		v   string
	}{{"tenant", e.TenantID}, {"user", e.UserID}, {"route", e.Route}, {"model", e.Model}, {"outcome", e.Outcome}, {"replica", e.Replica}} {
		if f.v != "" {
			b = append(b, `,"`...)
			b = append(b, f.key...)
			b = append(b, `":`...)
			b = appendString(b, f.v)
		}
	}
	for _, f := range [...]struct {
		key string
		v   int64
	}{{"end", e.End}, {"status", int64(e.Status)}, {"in", e.BytesIn}, {"out", e.BytesOut}, {"ms", e.LatencyMS},
		{"itok", e.InTok}, {"otok", e.OutTok}, {"img", e.Images}, {"mpx", e.MPMillis}, {"audio", e.Audio},
		{"gpu", e.GPU}, {"cost", e.Cost}, {"reserved", e.Reserved}} {
		if f.v != 0 {
			b = append(b, `,"`...)
			b = append(b, f.key...)
			b = append(b, `":`...)
			b = strconv.AppendInt(b, f.v, 10)
		}
	}
	return append(b, "}\n"...)
}

// appendString appends s as a JSON string: plain printable ASCII as is,
// anything else through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// readSegment returns the records of one segment file, in order. The
// segment ends at its first zero byte (a line never holds one: JSON
// escapes it), or at the end of the file. A last line cut short (by a
// crash in the middle of a write) is skipped; a malformed line before the
// last one is an error.
func readSegment(path string) ([]*tollgate.UsageRecord, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read usage journal: %w", err)
	}
	if end := bytes.IndexByte(data, 0); end >= 0 {
		data = data[:end]
	}
	var out []*tollgate.UsageRecord
	for line := 1; len(data) > 0; line++ {
		l, rest, complete := bytes.Cut(data, []byte{'\n'})
		data = rest
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		var e entry
		if err := json.Unmarshal(l, &e); err != nil || e.ID == "" {
			if !complete || len(bytes.TrimSpace(rest)) == 0 {
				break // the last line, cut short
			}
			return nil, fmt.Errorf("read usage journal %s: line %d is malformed", path, line)
		}
		out = append(out, e.record())
	}
	return out, nil
}

// removeFile removes path; a file already gone is not an error.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove usage journal: %w", err)
	}
	return nil
}

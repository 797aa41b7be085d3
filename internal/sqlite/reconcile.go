package sqlite

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Reconcile settles, as unknown, the open records started before
// startedBefore: those in the journal segments of stopped processes that
// have no row (whatever replica they name: a stopped process holds no
// lease), those open in this process and rows left open by an earlier
// version of the ledger that name no replica. Held records (open rows of
// jobs) are left open. Segments of stopped processes are removed once
// each of their records has a row.
func (l *Ledger) Reconcile(ctx context.Context, startedBefore, at time.Time, chargeReserved bool) ([]*tollgate.UsageRecord, error) {
	l.settleMu.Lock()
	defer l.settleMu.Unlock()
	l.openMu.Lock()
	defer l.openMu.Unlock()
	if err := l.prepare(ctx); err != nil {
		return nil, err
	}
	cutoff := startedBefore.UnixMicro()
	out, err := l.openRows(ctx, cutoff)
	if err != nil {
		return nil, err
	}
	left, consumed, err := l.leftInJournal(ctx, cutoff)
	if err != nil {
		return nil, err
	}
	out = append(out, left...)
	var released []*openRecord
	l.omu.Lock()
	for _, o := range l.open {
		if o.rec.Start.UnixMicro() < cutoff && o.rec.Replica == "" {
			r := *o.rec
			out = append(out, &r)
			released = append(released, o)
		}
	}
	l.omu.Unlock()
	markUnknown(out, at, chargeReserved)
	if len(out) == 0 {
		for _, path := range consumed {
			if err := removeFile(path); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	if err := l.commitRows(ctx, out, released, consumed); err != nil {
		return nil, fmt.Errorf("reconcile usage: %w", err)
	}
	return out, nil
}

// openRows returns the rows that an earlier version of the ledger left
// open in the table, started before cutoff.
func (l *Ledger) openRows(ctx context.Context, cutoff int64) ([]*tollgate.UsageRecord, error) {
	out, err := l.queryUsage(ctx, `WHERE settled = 0 AND held = 0 AND started_at < ? AND replica = ''`, cutoff)
	if err != nil {
		return nil, fmt.Errorf("reconcile usage: %w", err)
	}
	return out, nil
}

// leftInJournal reads the segments of stopped processes and returns their
// records started before cutoff that have no row, and the segments that
// are consumed once those are settled: every record started before cutoff
// or already with a row.
func (l *Ledger) leftInJournal(ctx context.Context, cutoff int64) ([]*tollgate.UsageRecord, []string, error) {
	files, err := l.jl.foreign()
	if err != nil {
		return nil, nil, err
	}
	segs := make(map[string][]*tollgate.UsageRecord, len(files))
	found := map[string]*tollgate.UsageRecord{}
	for _, n := range slices.Sorted(maps.Keys(files)) {
		recs, err := readSegment(files[n])
		if err != nil {
			return nil, nil, err
		}
		segs[files[n]] = recs
		l.omu.Lock()
		for _, r := range recs {
			if _, dup := found[r.RequestID]; !dup && l.open[r.RequestID] == nil {
				found[r.RequestID] = r
			}
		}
		l.omu.Unlock()
	}
	have, err := l.haveRows(ctx, slices.Collect(maps.Keys(found)))
	if err != nil {
		return nil, nil, err
	}
	var left []*tollgate.UsageRecord
	for _, r := range found {
		if !have[r.RequestID] && r.Start.UnixMicro() < cutoff {
			left = append(left, r)
		}
	}
	var consumed []string
	l.omu.Lock()
	defer l.omu.Unlock()
	for path, recs := range segs {
		if !slices.ContainsFunc(recs, func(r *tollgate.UsageRecord) bool {
			return l.open[r.RequestID] != nil || !have[r.RequestID] && r.Start.UnixMicro() >= cutoff
		}) {
			consumed = append(consumed, path)
		}
	}
	return left, consumed, nil
}

// haveRows returns which of ids have a row, settled or not.
func (l *Ledger) haveRows(ctx context.Context, ids []string) (map[string]bool, error) {
	have := map[string]bool{}
	for chunk := range slices.Chunk(ids, 500) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := l.db.read.QueryContext(ctx, `SELECT request_id FROM usage_records WHERE request_id IN (?`+
			strings.Repeat(`, ?`, len(chunk)-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("find usage records: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("find usage records: %w", err)
			}
			have[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("find usage records: %w", err)
		}
	}
	return have, nil
}

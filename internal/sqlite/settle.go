package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Write appends open records to the journal and memory (held ones, of
// jobs, are open rows of usage_records instead), and inserts settled
// ones into usage_records in one transaction. A record opened and
// settled in the same batch is only inserted settled.
func (l *Ledger) Write(ctx context.Context, open, settled []*tollgate.UsageRecord) error {
	if len(open) == 0 && len(settled) == 0 {
		return nil
	}
	if len(settled) > 0 {
		l.settleMu.Lock()
		defer l.settleMu.Unlock()
	}
	if len(open) > 0 {
		l.openMu.Lock()
		defer l.openMu.Unlock()
	}
	if err := l.prepare(ctx); err != nil {
		return err
	}
	batch := make(map[string]*tollgate.UsageRecord, len(open))
	l.omu.Lock()
	for _, r := range open {
		if _, dup := batch[r.RequestID]; dup || l.open[r.RequestID] != nil {
			l.omu.Unlock()
			return tollgate.Errorf(tollgate.EConflict, "a usage record of this batch exists")
		}
		batch[r.RequestID] = r
	}
	l.omu.Unlock()
	if err := l.checkAbsent(ctx, open); err != nil {
		return err
	}
	if len(settled) > 0 {
		if err := l.settle(ctx, settled, batch); err != nil {
			return err
		}
	}
	// What was not settled above stays open. The settlements are committed
	// first: when the journal write fails, a retry of the batch finds them
	// settled and the open records absent.
	var keep, held []*tollgate.UsageRecord
	for _, r := range open {
		switch {
		case batch[r.RequestID] == nil:
		case r.Held:
			held = append(held, r)
		default:
			keep = append(keep, stored(r))
		}
	}
	if len(held) > 0 {
		// A job's record may stay open for hours: an open row, not a
		// journal line that would keep its segment on disk as long.
		if err := l.commit(ctx, nil, held, nil, nil); err != nil {
			if isUnique(err) {
				return tollgate.Errorf(tollgate.EConflict, "a usage record of this batch exists")
			}
			return err
		}
	}
	if len(keep) == 0 {
		return nil
	}
	seg, err := l.jl.append(keep)
	if err != nil {
		return err
	}
	l.omu.Lock()
	for _, r := range keep {
		l.open[r.RequestID] = &openRecord{rec: r, seg: seg}
	}
	l.omu.Unlock()
	return nil
}

// settle inserts settled records. A record open in memory or opened in
// this batch keeps its start, owner, route, model and reservation, and
// leaves memory and batch.
func (l *Ledger) settle(ctx context.Context, settled []*tollgate.UsageRecord, batch map[string]*tollgate.UsageRecord) error {
	rows := make([]*tollgate.UsageRecord, 0, len(settled))
	var released []*openRecord
	seen := make(map[string]bool, len(settled))
	opened := make([]*openRecord, len(settled))
	l.omu.Lock()
	for i, s := range settled {
		opened[i] = l.open[s.RequestID]
	}
	l.omu.Unlock()
	for i, s := range settled {
		row := *s
		if o := opened[i]; o != nil && !seen[s.RequestID] {
			released = append(released, o)
			keepOpened(&row, o.rec)
		} else if o := batch[s.RequestID]; o != nil {
			delete(batch, s.RequestID)
			keepOpened(&row, o)
		}
		seen[s.RequestID] = true
		row.Settled = true
		rows = append(rows, &row)
	}
	return l.commitRows(ctx, rows, released, nil)
}

// keepOpened copies to a settlement what the open record fixed.
func keepOpened(s, open *tollgate.UsageRecord) {
	s.Start, s.TenantID, s.UserID, s.Route, s.Model, s.Reserved = open.Start, open.TenantID, open.UserID, open.Route, open.Model, open.Reserved
	s.Replica, s.Held = open.Replica, open.Held
}

// commitRows inserts settled rows (numbering them in order) in one
// transaction, and then drops the released open records from memory and
// removes the journal segments of removed, both only once committed.
func (l *Ledger) commitRows(ctx context.Context, rows []*tollgate.UsageRecord, released []*openRecord, removed []string) error {
	return l.commit(ctx, rows, nil, released, removed)
}

// commit is commitRows that also inserts open rows (held records) in the
// same transaction.
func (l *Ledger) commit(ctx context.Context, rows, open []*tollgate.UsageRecord, released []*openRecord, removed []string) error {
	tx, err := l.db.write.BeginTx(ctx, nil)
	if err != nil {
		return storeErr(fmt.Errorf("begin: %w", err))
	}
	err = l.insertSettled(ctx, tx, rows)
	if err == nil {
		err = insertOpen(ctx, tx, open)
	}
	if err != nil {
		_ = tx.Rollback()
		return storeErr(err)
	}
	l.mu.Lock()
	err = tx.Commit()
	if err == nil {
		l.omu.Lock()
		for _, o := range released {
			delete(l.open, o.rec.RequestID)
		}
		l.omu.Unlock()
	}
	l.mu.Unlock()
	if err != nil {
		return storeErr(fmt.Errorf("commit: %w", err))
	}
	for _, o := range released {
		l.jl.release(o.seg, 1)
	}
	for _, path := range removed {
		// Left in place when it fails: the next Reconcile finds its
		// records settled and tries again.
		_ = removeFile(path)
	}
	return nil
}

// insertSettled inserts rows, settled, up to 32 rows per statement
// while it can. A record already settled stays as it is; a row left open
// by an earlier version of the ledger is settled.
func (l *Ledger) insertSettled(ctx context.Context, tx *sql.Tx, rows []*tollgate.UsageRecord) error {
	if len(rows) == 0 {
		return nil
	}
	var seq int64
	if err := tx.StmtContext(ctx, l.nextSeq).QueryRowContext(ctx).Scan(&seq); err != nil {
		return fmt.Errorf("usage sequence: %w", err)
	}
	for _, r := range rows {
		r.Settled, r.Seq = true, seq
		seq++
	}
	args := make([]any, 0, min(len(rows), upsertChunks()[0])*settledArgs)
	for len(rows) > 0 {
		n := 1
		for _, c := range upsertChunks() {
			if len(rows) >= c {
				n = c
				break
			}
		}
		args = args[:0]
		for _, r := range rows[:n] {
			args = appendSettledArgs(args, r)
		}
		if _, err := tx.StmtContext(ctx, l.upsert[n]).ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("settle usage: %w", err)
		}
		rows = rows[n:]
	}
	return nil
}

// upsertChunks returns the rows per insert statement, largest first.
func upsertChunks() [3]int { return [...]int{32, 8, 1} }

// existsArgs ids are looked up by one exists statement.
const existsArgs = 16

const upsertTail = ` ON CONFLICT (request_id) DO UPDATE SET ended_at = excluded.ended_at, outcome = excluded.outcome,
	status = excluded.status, bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out,
	latency_ms = excluded.latency_ms, input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
	images = excluded.images, megapixel_millis = excluded.megapixel_millis, audio_millis = excluded.audio_millis,
	gpu_millis = excluded.gpu_millis, output_audio_millis = excluded.output_audio_millis, cost = excluded.cost, settled = 1, seq = excluded.seq
	WHERE usage_records.settled = 0`

// prepare readies the statements once: the inserts and the next sequence
// number on the write connection, so a group commit does not parse SQL,
// and the existence checks on the read pool, so an open record never
// waits for the write connection.
func (l *Ledger) prepare(ctx context.Context) error {
	l.prepMu.Lock()
	defer l.prepMu.Unlock()
	if l.exists != nil {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	var all []*sql.Stmt
	var err error
	prep := func(db *sql.DB, query string) *sql.Stmt {
		if err != nil {
			return nil
		}
		st, perr := db.PrepareContext(ctx, query)
		if err = perr; err == nil {
			all = append(all, st)
		}
		return st
	}
	upsert := map[int]*sql.Stmt{}
	for _, n := range upsertChunks() {
		tuples := strings.Repeat(`(`+settledValues+`), `, n-1) + `(` + settledValues + `)`
		upsert[n] = prep(l.db.write.DB, `INSERT INTO usage_records (`+usageColumns+`) VALUES `+tuples+upsertTail)
	}
	nextSeq := prep(l.db.write.DB, `SELECT COALESCE((SELECT seq FROM usage_records
		WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1), 0) + 1`)
	exists := prep(l.db.read, `SELECT request_id FROM usage_records WHERE request_id IN (?`+
		strings.Repeat(`, ?`, existsArgs-1)+`) LIMIT 1`)
	exists1 := prep(l.db.read, `SELECT request_id FROM usage_records WHERE request_id = ?`)
	if err != nil {
		for _, st := range all {
			_ = st.Close()
		}
		return fmt.Errorf("prepare usage statements: %w", err)
	}
	l.upsert, l.nextSeq, l.exists, l.exists1 = upsert, nextSeq, exists, exists1
	return nil
}

// checkAbsent returns EConflict when one of the open records has a row.
// Records with generated ids (NewID) cannot have one and are not looked up.
func (l *Ledger) checkAbsent(ctx context.Context, all []*tollgate.UsageRecord) error {
	var open []*tollgate.UsageRecord
	for _, r := range all {
		if !r.NewID {
			open = append(open, r)
		}
	}
	for len(open) > 0 {
		n := min(len(open), existsArgs)
		stmt, args := l.exists1, []any{open[0].RequestID}
		if n > 1 {
			stmt, args = l.exists, make([]any, existsArgs)
			for i := range args {
				args[i] = open[min(i, n-1)].RequestID // padded with the last id
			}
		}
		var id string
		err := stmt.QueryRowContext(ctx, args...).Scan(&id)
		if err == nil {
			return tollgate.Errorf(tollgate.EConflict, "a usage record of this batch exists")
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("find usage records: %w", err)
		}
		open = open[n:]
	}
	return nil
}

// close closes the journal; its segment stays on disk while it holds
// open records.
func (l *Ledger) close() error {
	l.openMu.Lock()
	defer l.openMu.Unlock()
	return l.jl.close()
}

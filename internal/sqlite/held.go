package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// insertOpen inserts open rows (held records).
func insertOpen(ctx context.Context, tx *sql.Tx, rows []*tollgate.UsageRecord) error {
	for _, r := range rows {
		_, err := tx.ExecContext(ctx, `INSERT INTO usage_records (`+usageColumns+`)
			VALUES (?, ?, NULL, ?, ?, ?, ?, '', 0, ?, 0, 0, ?, ?, ?, ?, ?, ?, ?, 0, ?, 0, NULL, ?, ?)`,
			r.RequestID, r.Start.UnixMicro(), r.TenantID, r.UserID, r.Route, r.Model, r.BytesIn,
			r.Units.InputTokens, r.Units.OutputTokens, r.Units.Images, r.Units.MegapixelMillis, r.Units.AudioMillis,
			r.Units.GPUMillis, r.Units.OutputAudioMillis, int64(r.Reserved), r.Replica, r.Held)
		if err != nil {
			return fmt.Errorf("open a held usage record: %w", err)
		}
	}
	return nil
}

// SettleHeld settles an open held row once.
func (l *Ledger) SettleHeld(ctx context.Context, r *tollgate.UsageRecord) (bool, error) {
	l.settleMu.Lock()
	defer l.settleMu.Unlock()
	if err := l.prepare(ctx); err != nil {
		return false, err
	}
	cur, err := scanUsage(l.db.read.QueryRowContext(ctx, `SELECT `+usageColumns+` FROM usage_records WHERE request_id = ?`, r.RequestID))
	if errors.Is(err, sql.ErrNoRows) {
		return false, tollgate.Errorf(tollgate.ENotFound, "usage record %q not found", r.RequestID)
	}
	if err != nil {
		return false, fmt.Errorf("find a held usage record: %w", err)
	}
	if cur.Settled {
		return false, nil
	}
	row := *r
	keepOpened(&row, cur)
	if err := l.commitRows(ctx, []*tollgate.UsageRecord{&row}, nil, nil); err != nil {
		return false, fmt.Errorf("settle a held usage record: %w", err)
	}
	*r = row
	return true, nil
}

// HeldOpen returns the open held rows, oldest first.
func (l *Ledger) HeldOpen(ctx context.Context) ([]*tollgate.UsageRecord, error) {
	out, err := l.queryUsage(ctx, `WHERE settled = 0 AND held = 1 ORDER BY started_at, request_id`)
	if err != nil {
		return nil, fmt.Errorf("held usage records: %w", err)
	}
	return out, nil
}

// queryUsage returns the records of usage_records that clause (WHERE,
// ORDER BY, LIMIT, over args) selects, in its order.
func (l *Ledger) queryUsage(ctx context.Context, clause string, args ...any) ([]*tollgate.UsageRecord, error) {
	rows, err := l.db.read.QueryContext(ctx, `SELECT `+usageColumns+` FROM usage_records `+clause, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*tollgate.UsageRecord
	for rows.Next() {
		r, err := scanUsage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// MoveHeld moves an open held row from one replica to another once.
func (l *Ledger) MoveHeld(ctx context.Context, requestID, from, to string) (bool, error) {
	res, err := l.db.write.ExecContext(ctx, `UPDATE usage_records SET replica = ?
		WHERE request_id = ? AND replica = ? AND held = 1 AND settled = 0`, to, requestID, from)
	if err != nil {
		return false, fmt.Errorf("move a held usage record: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	if _, err := l.Record(ctx, requestID); err != nil {
		return false, err
	}
	return false, nil
}

// HeldExpired returns the open held rows of replicas without a live
// lease.
func (l *Ledger) HeldExpired(ctx context.Context, at time.Time) ([]*tollgate.UsageRecord, error) {
	live, err := l.liveLeases(ctx, at)
	if err != nil {
		return nil, err
	}
	all, err := l.HeldOpen(ctx)
	if err != nil {
		return nil, err
	}
	var out []*tollgate.UsageRecord
	for _, r := range all {
		if r.Replica != "" && !live[r.Replica] {
			out = append(out, r)
		}
	}
	return out, nil
}

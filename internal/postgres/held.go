package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// SettleHeld settles an open held record once: the row is locked, so of
// replicas settling it at once one does and the others find it settled.
func (l *Ledger) SettleHeld(ctx context.Context, r *tollgate.UsageRecord) (bool, error) {
	var done bool
	var row *tollgate.UsageRecord
	err := l.db.withTx(ctx, func(tx pgx.Tx) error {
		done = false
		// The sequence lock first, as every settling transaction takes it.
		seq, err := l.nextSeq(ctx, tx)
		if err != nil {
			return err
		}
		cur, err := scanUsage(tx.QueryRow(ctx, `SELECT `+usageColumns+` FROM usage_records WHERE request_id = $1 FOR UPDATE`, r.RequestID))
		if errors.Is(err, pgx.ErrNoRows) {
			return tollgate.Errorf(tollgate.ENotFound, "usage record %q not found", r.RequestID)
		} else if err != nil {
			return fmt.Errorf("find a held usage record: %w", err)
		}
		if cur.Settled {
			return nil
		}
		s := *r
		s.Start, s.TenantID, s.UserID, s.Route, s.Model, s.Reserved = cur.Start, cur.TenantID, cur.UserID, cur.Route, cur.Model, cur.Reserved
		s.Replica, s.Held, s.Settled, s.Seq = cur.Replica, cur.Held, true, seq
		if _, err := tx.Exec(ctx, settleSQL, usageArgs(&s)...); err != nil {
			return fmt.Errorf("settle a held usage record: %w", err)
		}
		done, row = true, &s
		return nil
	})
	if err != nil {
		return false, err
	}
	if done {
		*r = *row
	}
	return done, nil
}

// HeldOpen returns every open held record, oldest first.
func (l *Ledger) HeldOpen(ctx context.Context) ([]*tollgate.UsageRecord, error) {
	rows, _ := l.db.pool.Query(ctx, `SELECT `+usageColumns+` FROM usage_records
		WHERE NOT settled AND held ORDER BY started_at, request_id`)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*tollgate.UsageRecord, error) { return scanUsage(row) })
	if err != nil {
		return nil, fmt.Errorf("held usage records: %w", err)
	}
	return out, nil
}

// MoveHeld moves an open held record from one replica to another once.
func (l *Ledger) MoveHeld(ctx context.Context, requestID, from, to string) (bool, error) {
	tag, err := l.db.pool.Exec(ctx, `UPDATE usage_records SET replica = $3
		WHERE request_id = $1 AND replica = $2 AND held AND NOT settled`, requestID, from, to)
	if err != nil {
		return false, fmt.Errorf("move a held usage record: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	if _, err := l.Record(ctx, requestID); err != nil {
		return false, err
	}
	return false, nil
}

// HeldExpired returns the open held records of replicas without a live
// lease.
func (l *Ledger) HeldExpired(ctx context.Context, at time.Time) ([]*tollgate.UsageRecord, error) {
	rows, _ := l.db.pool.Query(ctx, `SELECT `+usageColumns+` FROM usage_records
		WHERE NOT settled AND held AND replica <> '' AND replica NOT IN
			(SELECT replica FROM replica_leases WHERE expires_at > $1)
		ORDER BY started_at, request_id`, at.UTC())
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*tollgate.UsageRecord, error) { return scanUsage(row) })
	if err != nil {
		return nil, fmt.Errorf("held usage records of stopped replicas: %w", err)
	}
	return out, nil
}

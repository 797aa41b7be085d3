package sqlite

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// RenewLease creates or extends a process's lease.
func (l *Ledger) RenewLease(ctx context.Context, replica string, expires time.Time) error {
	if replica == "" {
		return tollgate.Errorf(tollgate.EInvalid, "a lease needs a replica id")
	}
	_, err := l.db.write.ExecContext(ctx, `INSERT INTO replica_leases (replica, expires_at) VALUES (?, ?)
		ON CONFLICT (replica) DO UPDATE SET expires_at = excluded.expires_at`, replica, expires.UnixMicro())
	if err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	return nil
}

// EndLease removes a process's lease.
func (l *Ledger) EndLease(ctx context.Context, replica string) error {
	if _, err := l.db.write.ExecContext(ctx, `DELETE FROM replica_leases WHERE replica = ?`, replica); err != nil {
		return fmt.Errorf("end lease: %w", err)
	}
	return nil
}

// ReconcileExpired settles, as unknown, the open records of this process
// and the rows left open in the table whose replica holds no lease valid
// after at, held ones excepted, and removes the expired leases. Journal segments of stopped
// processes are Reconcile's, at start.
func (l *Ledger) ReconcileExpired(ctx context.Context, at time.Time, chargeReserved bool) ([]*tollgate.UsageRecord, error) {
	l.settleMu.Lock()
	defer l.settleMu.Unlock()
	l.openMu.Lock()
	defer l.openMu.Unlock()
	if err := l.prepare(ctx); err != nil {
		return nil, err
	}
	live, err := l.liveLeases(ctx, at)
	if err != nil {
		return nil, err
	}
	rows, err := l.db.read.QueryContext(ctx, `SELECT `+usageColumns+` FROM usage_records
		WHERE settled = 0 AND held = 0 AND replica <> ''`)
	if err != nil {
		return nil, fmt.Errorf("reconcile usage: %w", err)
	}
	var out []*tollgate.UsageRecord
	for rows.Next() {
		r, err := scanUsage(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("reconcile usage: %w", err)
		}
		if !live[r.Replica] {
			out = append(out, r)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reconcile usage: %w", err)
	}
	var released []*openRecord
	l.omu.Lock()
	for _, o := range l.open {
		if o.rec.Replica != "" && !live[o.rec.Replica] {
			r := *o.rec
			out = append(out, &r)
			released = append(released, o)
		}
	}
	l.omu.Unlock()
	markUnknown(out, at, chargeReserved)
	if len(out) > 0 {
		if err := l.commitRows(ctx, out, released, nil); err != nil {
			return nil, fmt.Errorf("reconcile usage: %w", err)
		}
	}
	if _, err := l.db.write.ExecContext(ctx, `DELETE FROM replica_leases WHERE expires_at <= ?`, at.UnixMicro()); err != nil {
		return nil, fmt.Errorf("remove expired leases: %w", err)
	}
	return out, nil
}

// liveLeases returns the replicas whose lease is valid after at.
func (l *Ledger) liveLeases(ctx context.Context, at time.Time) (map[string]bool, error) {
	rows, err := l.db.write.QueryContext(ctx, `SELECT replica FROM replica_leases WHERE expires_at > ?`, at.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("read leases: %w", err)
	}
	defer rows.Close()
	live := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read leases: %w", err)
		}
		live[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read leases: %w", err)
	}
	return live, nil
}

// markUnknown settles records as reconciled at at, in start order.
func markUnknown(out []*tollgate.UsageRecord, at time.Time, chargeReserved bool) {
	slices.SortFunc(out, func(a, b *tollgate.UsageRecord) int {
		return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.RequestID, b.RequestID))
	})
	end := at.UTC().Truncate(time.Microsecond)
	for _, r := range out {
		r.Outcome, r.End, r.Cost = tollgate.ResultUnknown, end, 0
		r.LatencyMS = max(0, end.Sub(r.Start).Milliseconds())
		if chargeReserved {
			r.Cost = r.Reserved
		}
	}
}

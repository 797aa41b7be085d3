package meter

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Heartbeat renews this replica's lease in the ledger and reconciles the
// open records of replicas whose lease expired (killed, or cut off from
// the store for longer than metering.lease_ttl), releasing what they held
// in the shared budget counters. In cluster mode Start runs it at once
// and then every third of the lease. Replicas' clocks must agree to well
// within the lease. A replica cut off from the store for longer than the
// lease is taken for dead: the others settle its open records as unknown,
// and its own later settlements of them leave the ledger unchanged.
func (m *Meter) Heartbeat(ctx context.Context) error {
	if m.replica == "" {
		return nil // one node: reconciled at start
	}
	now := m.now()
	if err := m.ledger.RenewLease(ctx, m.replica, now.Add(m.leaseTTL)); err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	recs, err := m.ledger.ReconcileExpired(ctx, now, m.cfg.Metering.UnknownCharge != "none")
	if err != nil {
		return fmt.Errorf("reconcile usage of expired replicas: %w", err)
	}
	m.releaseReconciled(ctx, recs, "reconciled records of replicas whose lease expired")
	return nil
}

// runHeartbeat calls Heartbeat every HeartbeatInterval until ctx ends.
func (m *Meter) runHeartbeat(ctx context.Context) {
	t := time.NewTicker(cmp.Or(m.opts.HeartbeatInterval, m.leaseTTL/3))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.Heartbeat(ctx); err != nil && ctx.Err() == nil {
				m.log.Error("usage ledger: heartbeat failed", "replica", m.replica, "err", err)
			}
		}
	}
}

// endLease gives the lease up after a clean stop, so records that could
// not be settled are reconciled by the other replicas at once.
func (m *Meter) endLease() {
	if m.replica == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.ledger.EndLease(ctx, m.replica); err != nil {
		m.log.Warn("usage ledger: could not end the lease; it expires by itself", "replica", m.replica, "err", err)
	}
}

// releaseReconciled releases, in the live counters, the part of the
// reconciled records' reservations they were not charged.
func (m *Meter) releaseReconciled(ctx context.Context, recs []*tollgate.UsageRecord, msg string) {
	for _, r := range recs {
		if delta := r.Cost - r.Reserved; delta != 0 {
			if _, err := m.counters.Adjust(ctx, allCounterKeys(r), delta); err != nil {
				m.log.Warn("usage ledger: could not release a reconciled reservation", "request_id", r.RequestID, "err", err)
			}
		}
	}
	if len(recs) > 0 {
		m.log.Warn("usage ledger: "+msg, "records", len(recs), "outcome", tollgate.ResultUnknown,
			"charged", m.cfg.Metering.UnknownCharge != "none")
	}
}

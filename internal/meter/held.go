package meter

import (
	"context"
	"fmt"

	"github.com/tollgate/tollgate/internal/tollgate"
)

var _ tollgate.HeldSettler = (*Meter)(nil)

// SettleHeld settles a held call (a job) from its stored record: any
// process may, also one started after the process that admitted it died,
// and of several trying exactly one settles it and releases its
// reservation. The price is the call's route's (the job model's), the
// budgets those of p's plan and overrides when the call started.
func (m *Meter) SettleHeld(ctx context.Context, requestID string, p *tollgate.Principal, out *tollgate.Outcome) (bool, error) {
	rec, err := m.ledger.Record(ctx, requestID)
	if err != nil {
		return false, fmt.Errorf("held usage record: %w", err)
	}
	if rec.Settled {
		return false, nil
	}
	rm := m.routes[rec.Route]
	if rm == nil {
		rm = &routeMeter{}
	}
	bs, err := m.budgetsFor(ctx, p, rec.Start)
	if err != nil {
		return false, err
	}
	s := &settlement{m: m, rec: rec, rm: rm, table: rm.table(rec.Model), req: rec.Units, budgets: bs, principal: p}
	return s.settleHeld(ctx, out)
}

// HeldOpen returns the open held records (jobs queued or running, or
// ended and not yet settled).
func (m *Meter) HeldOpen(ctx context.Context) ([]*tollgate.UsageRecord, error) {
	return m.ledger.HeldOpen(ctx)
}

// releaseHeld is the release of a held call admitted here.
func (s *settlement) releaseHeld(ctx context.Context, out *tollgate.Outcome) {
	if _, err := s.settleHeld(ctx, out); err != nil {
		s.m.log.Error("usage ledger: could not settle a job; it is settled when the jobs look again",
			"request_id", s.rec.RequestID, "err", err)
	}
}

// settleHeld prices the outcome and settles the record in the ledger at
// once, and the budget counters only when this call settled it.
func (s *settlement) settleHeld(ctx context.Context, out *tollgate.Outcome) (bool, error) {
	ctx = context.WithoutCancel(ctx)
	r := s.priced(ctx, out)
	ok, err := s.m.ledger.SettleHeld(ctx, &r)
	if err != nil || !ok {
		return false, err
	}
	s.adjust(ctx, &r)
	return true, nil
}

// HoldHere makes a held record name this replica, whichever opened it.
func (m *Meter) HoldHere(ctx context.Context, requestID string) error {
	if m.replica == "" {
		return nil
	}
	for range 3 { // another replica may move it in between
		rec, err := m.ledger.Record(ctx, requestID)
		if err != nil {
			return fmt.Errorf("held usage record: %w", err)
		}
		if rec.Settled || rec.Replica == m.replica {
			return nil
		}
		if ok, err := m.ledger.MoveHeld(ctx, requestID, rec.Replica, m.replica); ok || err != nil {
			return err
		}
	}
	return fmt.Errorf("held usage record %s: moved by other replicas meanwhile", requestID)
}

// HeldOfStopped returns the held records of replicas whose lease lapsed.
func (m *Meter) HeldOfStopped(ctx context.Context) ([]*tollgate.UsageRecord, error) {
	if m.replica == "" {
		return nil, nil
	}
	return m.ledger.HeldExpired(ctx, m.now())
}

// TakeHeld moves a stopped replica's held record to this one, once.
func (m *Meter) TakeHeld(ctx context.Context, r *tollgate.UsageRecord) (bool, error) {
	if m.replica == "" {
		return false, nil
	}
	return m.ledger.MoveHeld(ctx, r.RequestID, r.Replica, m.replica)
}

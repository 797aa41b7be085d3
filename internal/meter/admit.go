package meter

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Admit reserves the call's maximum cost under the caller's budgets
// (EQuota when one has no room) and writes its open usage record, waiting
// for the group commit that holds it, before the call may be forwarded.
// The returned release prices the outcome, settles the budgets (releasing
// what was reserved and not spent, also on failure and disconnect) and
// queues the settled record.
func (m *Meter) Admit(ctx context.Context, c *tollgate.Call) (func(context.Context, *tollgate.Outcome), error) {
	if c.Start.IsZero() {
		c.Start = m.now()
	}
	if c.RequestID == "" {
		c.RequestID, c.NewID = rand.Text(), true // the ledger needs a unique id
	}
	rm := m.routes[c.Route]
	if rm == nil {
		rm = &routeMeter{}
	}
	table := rm.table(c.Model)
	var req tollgate.Units
	if rm.media || bytes.Contains(c.Body, []byte("base64")) || (len(c.Body) > 0 && c.Body[0] != '{') {
		req = requestUnits(c.Body)
	}
	reserved := m.maxCost(rm, table, c, req)
	bs, err := m.budgetsFor(ctx, c.Principal, c.Start)
	if err != nil {
		return nil, err
	}
	if err := m.reserve(ctx, bs, reserved); err != nil {
		return nil, err
	}
	rec := &tollgate.UsageRecord{RequestID: c.RequestID, NewID: c.NewID, Start: c.Start.UTC(), Route: c.Route, Model: c.Model,
		BytesIn: c.BytesIn, Reserved: reserved, Units: req, Replica: m.replica, Held: c.Held}
	if p := c.Principal; p != nil {
		rec.UserID, rec.TenantID = p.UserID, p.TenantID
	}
	if err := m.writer.open(ctx, rec); err != nil {
		m.unreserve(ctx, bs, reserved)
		if tollgate.ErrorCode(err) == tollgate.EInternal {
			// A call is never forwarded unrecorded; the ledger failing is
			// not the caller's doing, and a retry (here or on another
			// replica) may succeed.
			return nil, tollgate.Unavailable(fmt.Errorf("open usage record: %w", err), 1,
				"usage cannot be recorded right now; try again shortly")
		}
		return nil, err
	}
	s := &settlement{m: m, rec: rec, rm: rm, table: table, req: req, budgets: bs, principal: c.Principal}
	if c.Held {
		// A job: not cut off by Stop, settled through the ledger once.
		return s.releaseHeld, nil
	}
	if !m.live.add(s) {
		// Stop began while the record was written: the call is not
		// forwarded.
		s.settle(ctx, &tollgate.Outcome{Status: http.StatusServiceUnavailable, Result: tollgate.ResultRejected})
		return nil, tollgate.Errorf(tollgate.EUnavailable, "the gateway is shutting down")
	}
	return s.release, nil
}

// maxCost is what a call is reserved at: its price at the highest tier
// with max_tokens (or DefaultMaxOutputTokens) output tokens, at most one
// token per input byte, the measured media, for GPU-priced routes the
// whole route timeout and for routes priced by output audio their
// max_output_audio; or the route's max_cost when that bound cannot be
// derived from the request.
func (m *Meter) maxCost(rm *routeMeter, t *priceTable, c *tollgate.Call, req tollgate.Units) tollgate.Money {
	derivable := (t[dimOutputTokens].maxPrice() == 0 || c.MaxOutputTokens > 0) && t[dimGPU].maxPrice() == 0 &&
		t[dimOutAudio].maxPrice() == 0
	if rm.maxCost > 0 && !derivable {
		return rm.maxCost
	}
	q := quantitiesOf(1, req)
	q[dimInputTokens] = max(c.BytesIn, int64(len(c.Body)))
	q[dimOutputTokens] = c.MaxOutputTokens
	if q[dimOutputTokens] <= 0 {
		q[dimOutputTokens] = m.opts.DefaultMaxOutputTokens
	}
	q[dimGPU] = rm.cfg.Timeout.Milliseconds()
	q[dimOutAudio] = rm.cfg.MaxOutputAudio.Milliseconds()
	return t.MaxCost(q)
}

// unreserve gives a reservation back.
func (m *Meter) unreserve(ctx context.Context, bs []budget, amount tollgate.Money) {
	if len(bs) == 0 || amount == 0 {
		return
	}
	if _, err := m.counters.Adjust(context.WithoutCancel(ctx), budgetKeys(bs), -amount); err != nil {
		m.log.Error("budget counters: could not release a reservation", "err", err)
	}
}

func budgetKeys(bs []budget) []string {
	keys := make([]string, len(bs))
	for i, b := range bs {
		keys[i] = b.key
	}
	return keys
}

// settlement is one admitted call waiting for its outcome.
type settlement struct {
	m         *Meter
	rec       *tollgate.UsageRecord
	rm        *routeMeter
	table     *priceTable
	req       tollgate.Units
	budgets   []budget
	principal *tollgate.Principal
}

// release settles the call: called exactly once by the data plane. It
// does nothing when Stop already settled the call, cut off by a drain.
func (s *settlement) release(ctx context.Context, out *tollgate.Outcome) {
	if !s.m.live.take(s) {
		return
	}
	defer s.m.live.busy.Done()
	s.settle(ctx, out)
}

// settle prices the outcome, settles the budgets and queues the settled
// record.
func (s *settlement) settle(ctx context.Context, out *tollgate.Outcome) {
	ctx = context.WithoutCancel(ctx)
	r := s.priced(ctx, out)
	s.adjust(ctx, &r)
	if !s.m.writer.settle(&r) {
		s.m.log.Warn("usage record settled after stop; it is reconciled at the next start", "request_id", r.RequestID)
	}
}

// adjust settles the budget counters of a priced record: what was
// reserved and not spent is released.
func (s *settlement) adjust(ctx context.Context, r *tollgate.UsageRecord) {
	if len(s.budgets) == 0 {
		return
	}
	vals, err := s.m.counters.Adjust(ctx, budgetKeys(s.budgets), r.Cost-r.Reserved)
	if err != nil {
		s.m.log.Error("budget counters: could not settle a reservation", "request_id", r.RequestID, "err", err)
	} else {
		s.m.checkAlerts(ctx, s.budgets, vals)
	}
}

// priced returns the settled record of the call for its outcome.
func (s *settlement) priced(ctx context.Context, out *tollgate.Outcome) tollgate.UsageRecord {
	if out == nil {
		out = &tollgate.Outcome{Result: tollgate.ResultUnknown}
	}
	m, r := s.m, *s.rec
	r.End, r.Outcome, r.Status, r.BytesOut = out.End.UTC(), out.Result, out.Status, out.BytesOut
	// An error status the upstream answered with is its failure, whoever
	// classified the outcome.
	answeredError := out.UpstreamStatus >= 400 || (out.Result == tollgate.ResultOK && out.Status >= 400)
	if answeredError && r.Outcome == tollgate.ResultOK {
		r.Outcome = tollgate.ResultUpstreamError
	}
	if out.BytesIn > r.BytesIn {
		r.BytesIn = out.BytesIn // a streamed upload of unknown length, counted as read
	}
	if r.End.IsZero() {
		r.End = m.now().UTC()
	}
	r.LatencyMS = max(0, r.End.Sub(r.Start).Milliseconds())
	r.Units = out.Units
	if r.Units.Images == 0 && r.Units.MegapixelMillis == 0 {
		r.Units.Images, r.Units.MegapixelMillis = s.req.Images, s.req.MegapixelMillis
	}
	if r.Units.AudioMillis == 0 {
		r.Units.AudioMillis = s.req.AudioMillis
	}
	r.Units.Megapixels = float64(r.Units.MegapixelMillis) / 1000
	r.Cost = s.price(ctx, &r, answeredError && s.rm.cfg.ChargeFailures)
	if len(s.budgets) > 0 && r.Cost > r.Reserved {
		m.log.Warn("call cost more than its reservation; charged the reservation so the budget holds",
			"request_id", r.RequestID, "cost", r.Cost.String(), "reserved", r.Reserved.String())
		r.Cost = r.Reserved
	}
	r.Settled = true
	return r
}

// price charges a call that reached the upstream (ok, or cancelled by the
// client mid-response) its full price. An upstream failure is charged only
// what the upstream reported it consumed (tokens, GPU time), not the
// per-request or media price, unless chargeFull (the route charges
// failures the upstream answered). A rejected call costs nothing.
func (s *settlement) price(ctx context.Context, r *tollgate.UsageRecord, chargeFull bool) tollgate.Money {
	q := quantitiesOf(1, r.Units)
	// Output audio past the bound its reservation held is delivered but
	// not charged.
	q[dimOutAudio] = min(q[dimOutAudio], s.rm.cfg.MaxOutputAudio.Milliseconds())
	switch r.Outcome {
	case tollgate.ResultOK, tollgate.ResultCancelled:
	case tollgate.ResultUpstreamError:
		if !chargeFull {
			q[dimRequests], q[dimImages], q[dimMegapixels], q[dimAudio] = 0, 0, 0, 0
		}
	default:
		return 0
	}
	var before, free quantities
	if s.principal != nil {
		free = freeQuantities(s.m.plan(s.principal).FreeUnits)
		var need [numDims]bool
		tracked := false
		for d := range numDims {
			need[d] = len(s.table[d].tiers) > 0 || free[d] > 0
			tracked = tracked || need[d]
		}
		if tracked {
			month, _ := periodBounds(tollgate.PeriodMonth, r.Start)
			b, err := s.m.unitsBefore(ctx, r.UserID, month, q, need)
			if err != nil {
				// Without the month's usage, price at the base rate with no
				// free units rather than not at all.
				s.m.log.Error("pricing without this month's usage", "request_id", r.RequestID, "err", err)
				b, free = quantities{}, quantities{}
			}
			before = b
		}
	}
	return s.table.Cost(q, before, free)
}

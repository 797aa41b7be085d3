package meter

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// budget is one hard limit that applies to a call.
type budget struct {
	scope  tollgate.BudgetScope
	id     string
	limit  tollgate.Money
	period string
	alerts []int
	start  time.Time // period start; zero for total
	end    time.Time // period end; zero for total
	key    string    // live counter key
}

// periodBounds returns the calendar (UTC) period containing t.
func periodBounds(period string, t time.Time) (start, end time.Time) {
	t = t.UTC()
	switch period {
	case tollgate.PeriodDay:
		start = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 1)
	case tollgate.PeriodMonth:
		start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	}
	return time.Time{}, time.Time{}
}

func counterKey(scope tollgate.BudgetScope, id, period string, start time.Time) string {
	// Built by hand: this runs for every metered call, and fmt with
	// time.Format cost more than the rest of the budget lookup.
	b := make([]byte, 0, 40+len(id))
	b = append(b, "budget:"...)
	b = append(b, scope...)
	b = append(b, ':')
	b = append(b, id...)
	b = append(b, ':')
	b = append(b, period...)
	b = append(b, ':')
	switch period {
	case tollgate.PeriodDay, tollgate.PeriodMonth:
		y, m, d := start.Date()
		b = appendDigits(b, y, 4)
		b = append(b, '-')
		b = appendDigits(b, int(m), 2)
		if period == tollgate.PeriodDay {
			b = append(b, '-')
			b = appendDigits(b, d, 2)
		}
	default:
		b = append(b, "total"...)
	}
	return string(b)
}

// appendDigits appends n zero-padded to width digits (n >= 0).
func appendDigits(b []byte, n, width int) []byte {
	var d [8]byte
	i := len(d)
	for n > 0 || i > len(d)-width {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, d[i:]...)
}

// allCounterKeys are the counters a record may have reserved under,
// whatever periods were configured when it started.
func allCounterKeys(r *tollgate.UsageRecord) []string {
	var keys []string
	for _, s := range []struct {
		scope tollgate.BudgetScope
		id    string
	}{{tollgate.ScopeUser, r.UserID}, {tollgate.ScopeTenant, r.TenantID}} {
		if s.id == "" {
			continue
		}
		for _, p := range []string{tollgate.PeriodDay, tollgate.PeriodMonth, tollgate.PeriodTotal} {
			start, _ := periodBounds(p, r.Start)
			keys = append(keys, counterKey(s.scope, s.id, p, start))
		}
	}
	return keys
}

// plan returns the caller's plan; an undefined plan has no limits.
func (m *Meter) plan(p *tollgate.Principal) config.Plan {
	return m.cfg.Plans[cmp.Or(p.Plan, m.cfg.DefaultPlan)]
}

// budgetsFor returns the hard budgets of a call by p at time at: the
// user's and the tenant's, each from an override or else the plan.
func (m *Meter) budgetsFor(ctx context.Context, p *tollgate.Principal, at time.Time) ([]budget, error) {
	if p == nil {
		return nil, nil
	}
	plan := m.plan(p)
	var out []budget
	for _, s := range []struct {
		scope tollgate.BudgetScope
		id    string
		plan  *config.Budget
	}{{tollgate.ScopeUser, p.UserID, plan.Budget}, {tollgate.ScopeTenant, p.TenantID, plan.TenantBudget}} {
		if s.id == "" {
			continue
		}
		ov, err := m.override.get(ctx, s.scope, s.id)
		if err != nil {
			return nil, err
		}
		var b budget
		switch {
		case ov != nil:
			b = budget{limit: ov.Amount, period: ov.Period, alerts: ov.Alerts}
			if b.alerts == nil && s.plan != nil {
				b.alerts = s.plan.Alerts
			}
		case s.plan != nil:
			amount, err := tollgate.ParseMoney(s.plan.Amount)
			if err != nil {
				return nil, fmt.Errorf("plan budget: %w", err)
			}
			b = budget{limit: amount, period: s.plan.Period, alerts: s.plan.Alerts}
		default:
			continue
		}
		b.scope, b.id = s.scope, s.id
		b.start, b.end = periodBounds(b.period, at)
		b.key = counterKey(b.scope, b.id, b.period, b.start)
		out = append(out, b)
	}
	return out, nil
}

// reserve takes amount under every budget, loading counters from the
// ledger when they are missing. A budget without room is EQuota.
func (m *Meter) reserve(ctx context.Context, bs []budget, amount tollgate.Money) error {
	if len(bs) == 0 {
		return nil
	}
	cs := make([]tollgate.BudgetCounter, len(bs))
	for i, b := range bs {
		cs[i] = tollgate.BudgetCounter{Key: b.key, Limit: b.limit}
	}
	for range 5 {
		missing, refused, err := m.counters.Reserve(ctx, cs, amount)
		if err != nil {
			m.log.Error("budget counters unavailable; refusing metered calls", "err", err)
			return tollgate.Unavailable(nil, 1, "budgets cannot be checked right now; try again shortly")
		}
		if refused >= 0 {
			return m.overBudget(ctx, bs[refused], amount)
		}
		if len(missing) == 0 {
			return nil
		}
		for _, i := range missing {
			if err := m.loadCounter(ctx, bs[i]); err != nil {
				return err
			}
		}
	}
	return tollgate.Unavailable(nil, 1, "budgets cannot be checked right now; try again shortly")
}

// overBudget is the refusal of a call whose reservation does not fit in
// b: it says what the call reserves and what is left, so a caller whose
// budget is not spent yet sees why a call is refused.
func (m *Meter) overBudget(ctx context.Context, b budget, amount tollgate.Money) error {
	per := "per " + b.period
	if b.period == tollgate.PeriodTotal {
		per = "in total"
	}
	vals, err := m.counters.Adjust(ctx, []string{b.key}, 0)
	if err != nil || len(vals) != 1 || vals[0] < 0 {
		return tollgate.Errorf(tollgate.EQuota, "this call may cost up to %s, more than is left of the %s budget of %s %s",
			amount, b.scope, b.limit, per)
	}
	left := max(b.limit-vals[0], 0)
	return tollgate.Errorf(tollgate.EQuota, "this call may cost up to %s, more than the %s left of the %s budget of %s %s (committed %s, calls in flight included)",
		amount, left, b.scope, b.limit, per, max(vals[0], 0))
}

// loadCounter rebuilds a counter from the ledger: settled costs plus open
// reservations of the period.
func (m *Meter) loadCounter(ctx context.Context, b budget) error {
	v, err := m.ledger.Committed(ctx, b.scope, b.id, b.start)
	if err != nil {
		err = fmt.Errorf("load budget %s: %w", b.key, err)
		if tollgate.ErrorCode(err) == tollgate.EInternal {
			return tollgate.Unavailable(err, 1, "budgets cannot be checked right now; try again shortly")
		}
		return err
	}
	var expires time.Time
	if !b.end.IsZero() {
		expires = b.end.Add(24 * time.Hour)
	}
	if err := m.counters.Init(ctx, b.key, v, expires); err != nil {
		return fmt.Errorf("load budget %s: %w", b.key, err)
	}
	return nil
}

// overrideCache keeps budget overrides for a few seconds, so a call costs
// no store read; changes made through this meter apply at once, changes
// made elsewhere within overrideTTL.
type overrideCache struct {
	store tollgate.BudgetStore
	now   func() time.Time
	mu    sync.Mutex
	m     map[overrideKey]overrideEntry
}

const overrideTTL = 5 * time.Second

type overrideEntry struct {
	ov *tollgate.BudgetOverride // nil: none
	at time.Time
}

// overrideKey is a budget override's scope and id.
type overrideKey struct {
	scope tollgate.BudgetScope
	id    string
}

func newOverrideCache(s tollgate.BudgetStore, now func() time.Time) *overrideCache {
	return &overrideCache{store: s, now: now, m: map[overrideKey]overrideEntry{}}
}

func (c *overrideCache) get(ctx context.Context, scope tollgate.BudgetScope, id string) (*tollgate.BudgetOverride, error) {
	if c.store == nil {
		return nil, nil
	}
	k := overrideKey{scope, id}
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if ok && c.now().Sub(e.at) < overrideTTL {
		return e.ov, nil
	}
	ov, err := c.store.Budget(ctx, scope, id)
	if tollgate.ErrorCode(err) == tollgate.ENotFound {
		ov, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("budget override: %w", err)
	}
	c.mu.Lock()
	c.m[k] = overrideEntry{ov: ov, at: c.now()}
	c.mu.Unlock()
	return ov, nil
}

func (c *overrideCache) forget(scope tollgate.BudgetScope, id string) {
	c.mu.Lock()
	delete(c.m, overrideKey{scope, id})
	c.mu.Unlock()
}

// unitsBefore records q as the user's usage in the month starting at
// month and returns the month's usage before it, for the dimensions in
// need (those priced in tiers or with free units). The month's totals live
// in the live counters (shared by replicas in cluster mode) under
// "units:" keys, whose values are quantities, not money; a missing one is
// loaded from the ledger.
func (m *Meter) unitsBefore(ctx context.Context, user string, month time.Time, q quantities, need [numDims]bool) (quantities, error) {
	var before quantities
	var totals *quantities
	for d := range numDims {
		if !need[d] || q[d] <= 0 {
			continue
		}
		key := fmt.Sprintf("units:%s:%s:%d", user, month.Format("2006-01"), d)
		for attempt := 0; ; attempt++ {
			vals, err := m.counters.Adjust(ctx, []string{key}, tollgate.Money(q[d]))
			if err != nil {
				return before, fmt.Errorf("usage this month: %w", err)
			}
			if vals[0] >= 0 {
				before[d] = int64(vals[0]) - q[d]
				break
			}
			if attempt > 0 {
				return before, fmt.Errorf("usage this month: counter %s vanished", key)
			}
			if totals == nil {
				row, err := m.ledger.UnitTotals(ctx, user, month)
				if err != nil {
					return before, fmt.Errorf("usage this month: %w", err)
				}
				t := quantitiesOf(row.Requests, row.Units)
				totals = &t
			}
			if err := m.counters.Init(ctx, key, tollgate.Money(totals[d]), month.AddDate(0, 2, 0)); err != nil {
				return before, fmt.Errorf("usage this month: %w", err)
			}
		}
	}
	return before, nil
}

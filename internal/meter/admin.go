package meter

import (
	"context"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// SetBudget creates or replaces a user's or tenant's budget override; it
// applies to this replica's next call at once and to other replicas within
// a few seconds. EInvalid for a bad override; EUnavailable without a
// budget store.
func (m *Meter) SetBudget(ctx context.Context, b *tollgate.BudgetOverride) error {
	if m.opts.Budgets == nil {
		return tollgate.Errorf(tollgate.EUnavailable, "budget overrides are not stored by this deployment")
	}
	if err := m.opts.Budgets.SetBudget(ctx, b); err != nil {
		return err
	}
	m.override.forget(b.Scope, b.ID)
	return nil
}

// DeleteBudget removes an override so the plan's budget applies again.
// ENotFound if there is none.
func (m *Meter) DeleteBudget(ctx context.Context, scope tollgate.BudgetScope, id string) error {
	if m.opts.Budgets == nil {
		return tollgate.Errorf(tollgate.EUnavailable, "budget overrides are not stored by this deployment")
	}
	if err := m.opts.Budgets.DeleteBudget(ctx, scope, id); err != nil {
		return err
	}
	m.override.forget(scope, id)
	return nil
}

// BudgetState is one hard budget of a caller, as GET /v1/me shows it.
type BudgetState struct {
	Scope       string     `json:"scope"` // user or tenant
	ID          string     `json:"id"`
	Period      string     `json:"period"`
	PeriodStart *time.Time `json:"period_start,omitempty"` // absent for total
	PeriodEnd   *time.Time `json:"period_end,omitempty"`
	Limit       string     `json:"limit"`
	Committed   string     `json:"committed"` // spent plus reserved in flight
	Remaining   string     `json:"remaining"`
}

// BudgetStates returns the caller's budgets (user, then tenant) with what
// is committed against them now, for GET /v1/me. Empty when none applies.
func (m *Meter) BudgetStates(ctx context.Context, p *tollgate.Principal) ([]BudgetState, error) {
	bs, err := m.budgetsFor(ctx, p, m.now())
	if err != nil {
		return nil, err
	}
	out := make([]BudgetState, 0, len(bs))
	for _, b := range bs {
		vals, err := m.counters.Adjust(ctx, []string{b.key}, 0)
		if err == nil && vals[0] < 0 {
			if err = m.loadCounter(ctx, b); err == nil {
				vals, err = m.counters.Adjust(ctx, []string{b.key}, 0)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("budget state: %w", err)
		}
		committed := max(vals[0], 0)
		st := BudgetState{Scope: string(b.scope), ID: b.id, Period: b.period, Limit: b.limit.String(),
			Committed: committed.String(), Remaining: max(b.limit-committed, 0).String()}
		if !b.start.IsZero() {
			st.PeriodStart, st.PeriodEnd = &b.start, &b.end
		}
		out = append(out, st)
	}
	return out, nil
}

package meter

import (
	"context"

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

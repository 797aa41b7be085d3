package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// checkOverride validates a budget override before it is stored.
func checkOverride(b *tollgate.BudgetOverride) error {
	if _, err := scopeColumn(b.Scope); err != nil {
		return err
	}
	if b.ID == "" {
		return tollgate.Errorf(tollgate.EInvalid, "budget needs a user or tenant id")
	}
	switch b.Period {
	case tollgate.PeriodDay, tollgate.PeriodMonth, tollgate.PeriodTotal:
	default:
		return tollgate.Errorf(tollgate.EInvalid, "budget period %q: want day, month or total", b.Period)
	}
	if b.Amount < 0 {
		return tollgate.Errorf(tollgate.EInvalid, "budget amount must not be negative")
	}
	for _, a := range b.Alerts {
		if a <= 0 || a > 100 {
			return tollgate.Errorf(tollgate.EInvalid, "budget alert %d: want a percentage from 1 to 100", a)
		}
	}
	return nil
}

// SetBudget creates or replaces an override.
func (l *Ledger) SetBudget(ctx context.Context, b *tollgate.BudgetOverride) error {
	if err := checkOverride(b); err != nil {
		return err
	}
	b.UpdatedAt = l.db.stamp()
	var alerts []int32
	if b.Alerts != nil {
		alerts = make([]int32, len(b.Alerts))
		for i, a := range b.Alerts {
			alerts[i] = int32(a)
		}
	}
	_, err := l.db.pool.Exec(ctx, `INSERT INTO budget_overrides (scope, id, amount, period, alerts, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scope, id) DO UPDATE SET amount = excluded.amount,
		period = excluded.period, alerts = excluded.alerts, updated_at = excluded.updated_at`,
		string(b.Scope), b.ID, int64(b.Amount), b.Period, alerts, b.UpdatedAt)
	if err != nil {
		return fmt.Errorf("set budget: %w", err)
	}
	return nil
}

func scanOverride(row pgx.Row) (*tollgate.BudgetOverride, error) {
	var b tollgate.BudgetOverride
	var scope string
	var amount int64
	var alerts []int32
	if err := row.Scan(&scope, &b.ID, &amount, &b.Period, &alerts, &b.UpdatedAt); err != nil {
		return nil, err
	}
	b.Scope, b.Amount, b.UpdatedAt = tollgate.BudgetScope(scope), tollgate.Money(amount), b.UpdatedAt.UTC()
	if alerts != nil {
		b.Alerts = make([]int, len(alerts))
		for i, a := range alerts {
			b.Alerts[i] = int(a)
		}
	}
	return &b, nil
}

const overrideColumns = `scope, id, amount, period, alerts, updated_at`

// Budget returns one override.
func (l *Ledger) Budget(ctx context.Context, scope tollgate.BudgetScope, id string) (*tollgate.BudgetOverride, error) {
	b, err := scanOverride(l.db.pool.QueryRow(ctx, `SELECT `+overrideColumns+` FROM budget_overrides
		WHERE scope = $1 AND id = $2`, string(scope), id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tollgate.Errorf(tollgate.ENotFound, "no budget override for %s %q", scope, id)
	}
	if err != nil {
		return nil, fmt.Errorf("budget: %w", err)
	}
	return b, nil
}

// Budgets lists every override.
func (l *Ledger) Budgets(ctx context.Context) ([]*tollgate.BudgetOverride, error) {
	rows, _ := l.db.pool.Query(ctx, `SELECT `+overrideColumns+` FROM budget_overrides
		ORDER BY scope COLLATE "C", id COLLATE "C"`)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*tollgate.BudgetOverride, error) { return scanOverride(row) })
	if err != nil {
		return nil, fmt.Errorf("list budgets: %w", err)
	}
	return out, nil
}

// DeleteBudget removes an override.
func (l *Ledger) DeleteBudget(ctx context.Context, scope tollgate.BudgetScope, id string) error {
	tag, err := l.db.pool.Exec(ctx, `DELETE FROM budget_overrides WHERE scope = $1 AND id = $2`, string(scope), id)
	if err != nil {
		return fmt.Errorf("delete budget: %w", err)
	}
	return mustAffect(tag, "no budget override for %s %q", scope, id)
}

// MarkAlert records a sent alert; true only for the first caller.
func (l *Ledger) MarkAlert(ctx context.Context, scope tollgate.BudgetScope, id string, periodStart time.Time, percent int) (bool, error) {
	tag, err := l.db.pool.Exec(ctx, `INSERT INTO budget_alerts (scope, id, period_start, percent, sent_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
		string(scope), id, periodStart.UTC(), percent, l.db.stamp())
	if err != nil {
		return false, fmt.Errorf("mark alert: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

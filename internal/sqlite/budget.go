package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

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

func joinAlerts(alerts []int) any {
	if alerts == nil {
		return nil
	}
	s := make([]string, len(alerts))
	for i, a := range alerts {
		s[i] = strconv.Itoa(a)
	}
	return strings.Join(s, ",")
}

func splitAlerts(v sql.NullString) []int {
	if !v.Valid {
		return nil
	}
	out := []int{}
	for f := range strings.SplitSeq(v.String, ",") {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// SetBudget creates or replaces an override.
func (l *Ledger) SetBudget(ctx context.Context, b *tollgate.BudgetOverride) error {
	if err := checkOverride(b); err != nil {
		return err
	}
	b.UpdatedAt = l.db.stamp()
	_, err := l.db.write.ExecContext(ctx, `INSERT INTO budget_overrides (scope, id, amount, period, alerts, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope, id) DO UPDATE SET amount = excluded.amount,
		period = excluded.period, alerts = excluded.alerts, updated_at = excluded.updated_at`,
		string(b.Scope), b.ID, int64(b.Amount), b.Period, joinAlerts(b.Alerts), b.UpdatedAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("set budget: %w", err)
	}
	return nil
}

func scanOverride(s scanner) (*tollgate.BudgetOverride, error) {
	var b tollgate.BudgetOverride
	var scope string
	var amount, updated int64
	var alerts sql.NullString
	if err := s.Scan(&scope, &b.ID, &amount, &b.Period, &alerts, &updated); err != nil {
		return nil, err
	}
	b.Scope, b.Amount, b.Alerts = tollgate.BudgetScope(scope), tollgate.Money(amount), splitAlerts(alerts)
	b.UpdatedAt = time.UnixMicro(updated).UTC()
	return &b, nil
}

// Budget returns one override.
func (l *Ledger) Budget(ctx context.Context, scope tollgate.BudgetScope, id string) (*tollgate.BudgetOverride, error) {
	b, err := scanOverride(l.db.read.QueryRowContext(ctx, `SELECT scope, id, amount, period, alerts, updated_at
		FROM budget_overrides WHERE scope = ? AND id = ?`, string(scope), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tollgate.Errorf(tollgate.ENotFound, "no budget override for %s %q", scope, id)
	}
	if err != nil {
		return nil, fmt.Errorf("budget: %w", err)
	}
	return b, nil
}

// Budgets lists every override.
func (l *Ledger) Budgets(ctx context.Context) ([]*tollgate.BudgetOverride, error) {
	rows, err := l.db.read.QueryContext(ctx, `SELECT scope, id, amount, period, alerts, updated_at
		FROM budget_overrides ORDER BY scope, id`)
	if err != nil {
		return nil, fmt.Errorf("list budgets: %w", err)
	}
	defer rows.Close()
	var out []*tollgate.BudgetOverride
	for rows.Next() {
		b, err := scanOverride(rows)
		if err != nil {
			return nil, fmt.Errorf("list budgets: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list budgets: %w", err)
	}
	return out, nil
}

// DeleteBudget removes an override.
func (l *Ledger) DeleteBudget(ctx context.Context, scope tollgate.BudgetScope, id string) error {
	res, err := l.db.write.ExecContext(ctx, `DELETE FROM budget_overrides WHERE scope = ? AND id = ?`, string(scope), id)
	if err != nil {
		return fmt.Errorf("delete budget: %w", err)
	}
	return mustAffect(res, "no budget override for %s %q", scope, id)
}

// MarkAlert records a sent alert; true only for the first caller.
func (l *Ledger) MarkAlert(ctx context.Context, scope tollgate.BudgetScope, id string, periodStart time.Time, percent int) (bool, error) {
	res, err := l.db.write.ExecContext(ctx, `INSERT INTO budget_alerts (scope, id, period_start, percent, sent_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		string(scope), id, periodStart.UnixMicro(), percent, l.db.stamp().UnixMicro())
	if err != nil {
		return false, fmt.Errorf("mark alert: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("mark alert: %w", err)
	}
	return n == 1, nil
}

package meter

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// BudgetJSON is a budget override as the admin API shows and takes it.
type BudgetJSON struct {
	Scope     string     `json:"scope"`
	ID        string     `json:"id"`
	Amount    string     `json:"amount"`
	Period    string     `json:"period"`
	Alerts    []int      `json:"alerts"` // null: the plan's
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

func budgetJSON(b *tollgate.BudgetOverride) BudgetJSON {
	t := b.UpdatedAt
	return BudgetJSON{Scope: string(b.Scope), ID: b.ID, Amount: b.Amount.String(), Period: b.Period, Alerts: b.Alerts, UpdatedAt: &t}
}

// ParseOverride builds an override from text (CLI flags or JSON). Period
// defaults to month. EInvalid for a bad amount.
func ParseOverride(scope, id, amount, period string, alerts []int) (*tollgate.BudgetOverride, error) {
	a, err := tollgate.ParseMoney(amount)
	if err != nil {
		return nil, err
	}
	if period == "" {
		period = tollgate.PeriodMonth
	}
	return &tollgate.BudgetOverride{Scope: tollgate.BudgetScope(scope), ID: id, Amount: a, Period: period, Alerts: alerts}, nil
}

// ListBudgetsHandler serves GET /admin/v1/budgets: every override.
func (m *Meter) ListBudgetsHandler() httpx.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := m.requireAdmin(r); err != nil {
			return err
		}
		if m.opts.Budgets == nil {
			return tollgate.Errorf(tollgate.EUnavailable, "budget overrides are not stored by this deployment")
		}
		list, err := m.opts.Budgets.Budgets(r.Context())
		if err != nil {
			return err
		}
		out := make([]BudgetJSON, 0, len(list))
		for _, b := range list {
			out = append(out, budgetJSON(b))
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"budgets": out})
		return nil
	}
}

// PutBudgetHandler serves PUT /admin/v1/budgets/{scope}/{id} with a JSON
// body {"amount":"5.00","period":"month","alerts":[80,100]}: it sets the
// user's or tenant's budget, replacing the plan's.
func (m *Meter) PutBudgetHandler() httpx.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := m.requireAdmin(r); err != nil {
			return err
		}
		var in BudgetJSON
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return tollgate.Errorf(tollgate.EInvalid, "body: want {\"amount\":\"5.00\",\"period\":\"month\"}")
		}
		b, err := ParseOverride(r.PathValue("scope"), r.PathValue("id"), in.Amount, in.Period, in.Alerts)
		if err != nil {
			return err
		}
		if err := m.SetBudget(r.Context(), b); err != nil {
			return err
		}
		httpx.WriteJSON(w, http.StatusOK, budgetJSON(b))
		return nil
	}
}

// DeleteBudgetHandler serves DELETE /admin/v1/budgets/{scope}/{id}: the
// plan's budget applies again. 404 when there is no override.
func (m *Meter) DeleteBudgetHandler() httpx.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := m.requireAdmin(r); err != nil {
			return err
		}
		if err := m.DeleteBudget(r.Context(), tollgate.BudgetScope(r.PathValue("scope")), r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// SetBudgetCommand sets an override from the CLI (`tollgate budget set`)
// and prints it; a running server applies it within a few seconds.
func SetBudgetCommand(ctx context.Context, store tollgate.BudgetStore, b *tollgate.BudgetOverride, w io.Writer) error {
	if err := store.SetBudget(ctx, b); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "%s %s: %s per %s\n", b.Scope, b.ID, b.Amount, b.Period); err != nil {
		return fmt.Errorf("print budget: %w", err)
	}
	return nil
}

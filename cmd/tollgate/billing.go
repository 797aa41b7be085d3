package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/meter"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// runUsage prints usage from the ledger: tollgate usage [--from D] [--to D]
// [--group-by user|tenant|route|model|day] [--user NAME] [--tenant T]
// [--format table|csv|json].
func runUsage(ctx context.Context, args []string, env Env) error {
	fs, cfgPath := newFlags("usage", env)
	from := fs.String("from", "", "start: 2026-11-01, 2026-11 or RFC 3339 (default: start of this month)")
	to := fs.String("to", "", "last day, inclusive: 2026-11-30 or 2026-11 (the whole month); an RFC 3339 time is an exclusive end (default: now)")
	group := fs.String("group-by", tollgate.GroupUser, "user, tenant, route, model or day")
	userName := fs.String("user", "", "only this user (name)")
	tenant := fs.String("tenant", "", "only this tenant")
	route := fs.String("route", "", "only this route")
	format := fs.String("format", "table", "table, csv or json")
	if err := noPositional(fs, args); err != nil {
		return err
	}
	if !slices.Contains([]string{tollgate.GroupUser, tollgate.GroupTenant, tollgate.GroupRoute, tollgate.GroupModel, tollgate.GroupDay}, *group) {
		return fmt.Errorf("usage: --group-by must be user, tenant, route, model or day")
	}
	if !slices.Contains([]string{"table", "csv", "json"}, *format) {
		return fmt.Errorf("usage: --format must be table, csv or json")
	}
	q := tollgate.UsageQuery{GroupBy: *group, TenantID: *tenant, Route: *route}
	var err error
	if q.From, err = meter.ParseTime("--from", *from); err != nil {
		return fmt.Errorf("usage: %s", describe(err))
	}
	if q.To, err = inclusiveEnd(*to); err != nil {
		return fmt.Errorf("usage: %s", describe(err))
	}
	return withStore(ctx, env, *cfgPath, func(_ *config.Config, e *engines) error {
		if *userName != "" {
			u, err := e.Users().UserByName(ctx, *userName)
			if err != nil {
				return fmt.Errorf("usage: %s", describe(err))
			}
			q.UserID = u.ID
		}
		if q.TenantID != "" {
			if _, err := e.Tenants().Tenant(ctx, q.TenantID); err != nil {
				return fmt.Errorf("usage: %s", describe(err))
			}
		}
		if q.From.IsZero() {
			now := time.Now().UTC()
			q.From = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
		}
		if !q.To.IsZero() && !q.To.After(q.From) {
			return fmt.Errorf("usage: --to must not be before --from")
		}
		names, err := usageNames(ctx, e, q.GroupBy)
		if err != nil {
			return fmt.Errorf("usage: %w", err)
		}
		if err := meter.WriteUsage(ctx, e.Ledger, meter.UsageParams{Query: q, Format: *format, Names: names}, env.Stdout); err != nil {
			return fmt.Errorf("usage: %s", describe(err))
		}
		return nil
	})
}

// runInvoice prints a tenant's invoice for a month:
// tollgate invoice --tenant T --month 2026-11 [--format json|csv].
func runInvoice(ctx context.Context, args []string, env Env) error {
	fs, cfgPath := newFlags("invoice", env)
	tenant := fs.String("tenant", "", "the tenant (required)")
	month := fs.String("month", "", "the month, e.g. 2026-11 (required)")
	format := fs.String("format", "json", "json or csv")
	if err := noPositional(fs, args); err != nil {
		return err
	}
	if *tenant == "" || *month == "" {
		return fmt.Errorf("invoice: --tenant and --month are required")
	}
	if *format != "json" && *format != "csv" {
		return fmt.Errorf("invoice: --format must be json or csv")
	}
	return withStore(ctx, env, *cfgPath, func(cfg *config.Config, e *engines) error {
		if _, err := e.Tenants().Tenant(ctx, *tenant); err != nil {
			return fmt.Errorf("invoice: %s", describe(err))
		}
		p := meter.InvoiceParams{TenantID: *tenant, Month: *month, Format: *format, Currency: cfg.Currency}
		if err := meter.WriteInvoice(ctx, e.Ledger, p, env.Stdout); err != nil {
			return fmt.Errorf("invoice: %s", describe(err))
		}
		return nil
	})
}

// runExport writes settled usage records as CloudEvents JSON lines after a
// cursor and prints the next cursor on stderr:
// tollgate export [--after N] [--limit N].
func runExport(ctx context.Context, args []string, env Env) error {
	fs, cfgPath := newFlags("export", env)
	after := fs.Int64("after", 0, "cursor: the sequence of the last event already consumed")
	limit := fs.Int("limit", 0, "at most this many events (0: all)")
	if err := noPositional(fs, args); err != nil {
		return err
	}
	if *after < 0 || *limit < 0 {
		return fmt.Errorf("export: --after and --limit must not be negative")
	}
	return withStore(ctx, env, *cfgPath, func(cfg *config.Config, e *engines) error {
		next, err := meter.Export(ctx, e.Ledger, meter.ExportParams{After: *after, Limit: *limit, Source: cfg.PublicURL, Currency: cfg.Currency}, env.Stdout)
		if err != nil {
			return fmt.Errorf("export: %s", describe(err))
		}
		fmt.Fprintf(env.Stderr, "next cursor: %d (resume with --after %d)\n", next, next)
		return nil
	})
}

// runBudget sets or clears a per-user or per-tenant budget override:
// tollgate budget set --user NAME|--tenant T --amount 5.00 [--period month]
// tollgate budget clear --user NAME|--tenant T.
func runBudget(ctx context.Context, args []string, env Env) error {
	verb, rest, err := sub("budget", args, env, "set", "clear", "list")
	if err != nil {
		return err
	}
	if verb == "list" {
		return budgetList(ctx, rest, env)
	}
	fs, cfgPath := newFlags("budget "+verb, env)
	userName := fs.String("user", "", "the user (name)")
	tenant := fs.String("tenant", "", "the tenant")
	amount, period, alerts := new(string), new(string), new(string)
	if verb == "set" {
		amount = fs.String("amount", "", "the budget, e.g. 5.00 (required)")
		period = fs.String("period", "month", "day, month or total")
		alerts = fs.String("alerts", "", "comma-separated alert percentages, e.g. 80,100 (default: the plan's)")
	}
	if err := noPositional(fs, rest); err != nil {
		return err
	}
	if (*userName == "") == (*tenant == "") {
		return fmt.Errorf("budget %s: give exactly one of --user and --tenant", verb)
	}
	if verb == "set" && *amount == "" {
		return fmt.Errorf("budget set: --amount is missing")
	}
	return withStore(ctx, env, *cfgPath, func(_ *config.Config, e *engines) error {
		scope, id := tollgate.ScopeTenant, *tenant
		if *userName != "" {
			u, err := e.Users().UserByName(ctx, *userName)
			if err != nil {
				return fmt.Errorf("budget %s: %s", verb, describe(err))
			}
			scope, id = tollgate.ScopeUser, u.ID
		}
		if verb == "clear" {
			if err := e.Ledger.DeleteBudget(ctx, scope, id); err != nil {
				return fmt.Errorf("budget clear: %s", describe(err))
			}
			fmt.Fprintf(env.Stdout, "%s %s: the plan's budget applies again\n", scope, id)
			return nil
		}
		var pct []int
		for _, s := range strings.Split(*alerts, ",") {
			if s = strings.TrimSpace(s); s != "" {
				var n int
				if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
					return fmt.Errorf("budget set: --alerts: %q is not a percentage", s)
				}
				pct = append(pct, n)
			}
		}
		b, err := meter.ParseOverride(string(scope), id, *amount, *period, pct)
		if err != nil {
			return fmt.Errorf("budget set: %s", describe(err))
		}
		if err := meter.SetBudgetCommand(ctx, e.Ledger, b, env.Stdout); err != nil {
			return fmt.Errorf("budget set: %s", describe(err))
		}
		return nil
	})
}

// budgetList prints the budget overrides with the names of their users.
func budgetList(ctx context.Context, args []string, env Env) error {
	fs, cfgPath := newFlags("budget list", env)
	if err := noPositional(fs, args); err != nil {
		return err
	}
	return withStore(ctx, env, *cfgPath, func(_ *config.Config, e *engines) error {
		list, err := e.Ledger.Budgets(ctx)
		if err != nil {
			return fmt.Errorf("budget list: %w", err)
		}
		names, err := usageNames(ctx, e, tollgate.GroupUser)
		if err != nil {
			return fmt.Errorf("budget list: %w", err)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SCOPE\tID\tNAME\tAMOUNT\tPERIOD\tALERTS\tUPDATED")
		for _, b := range list {
			name := b.ID
			if b.Scope == tollgate.ScopeUser {
				name = cmp.Or(names[b.ID], "(deleted)")
			}
			alerts := "the plan's"
			if b.Alerts != nil {
				alerts = strings.Trim(strings.Join(strings.Fields(fmt.Sprint(b.Alerts)), ","), "[]")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Scope, b.ID, name, b.Amount, b.Period, alerts, b.UpdatedAt.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	})
}

// usageNames maps the ids of a usage report's groups to names: user ids
// to user names, tenant ids to tenant names. Other groups need none.
func usageNames(ctx context.Context, e *engines, group string) (map[string]string, error) {
	names := map[string]string{}
	switch group {
	case tollgate.GroupUser:
		users, err := e.Users().Users(ctx, "")
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		for _, u := range users {
			names[u.ID] = u.Name
		}
	case tollgate.GroupTenant:
		tenants, err := e.Tenants().Tenants(ctx)
		if err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		for _, t := range tenants {
			names[t.ID] = t.Name
		}
	default:
		return nil, nil
	}
	return names, nil
}

// inclusiveEnd parses --to: a day (2026-11-30) or a month (2026-11) counts
// whole, so the end is the start of the next one; an RFC 3339 time is an
// exclusive end as it is.
func inclusiveEnd(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.AddDate(0, 0, 1), nil
	}
	if t, err := time.Parse("2006-01", s); err == nil {
		return t.AddDate(0, 1, 0), nil
	}
	return meter.ParseTime("--to", s)
}

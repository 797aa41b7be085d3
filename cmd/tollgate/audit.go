package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/tollgate/tollgate/internal/admin"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

const auditUsage = `Usage: tollgate audit [--from D] [--to D] [--actor USER] [--action A] [--limit N] [--cursor C] [--format table|json]

Lists the audit trail, newest first: logins (failed ones with the reason
and the client IP), token refreshes, revocations, admin changes and bans.
--from and --to take a date (2026-11-02, --to includes that day) or an
RFC 3339 time (--to exclusive). --actor is a user ID or login name;
--action is one action (login, user.create, ...) or a prefix (user.*).
When more events match, the last line names the --cursor of the next page.
`

// runAudit prints the audit trail, with the filters of GET /admin/v1/audit.
func runAudit(ctx context.Context, args []string, env Env) error {
	fs, cfgPath := newFlags("audit", env)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), auditUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	v := url.Values{}
	for _, name := range []string{"from", "to", "actor", "action", "cursor"} {
		fs.Func(name, "filter: "+name, func(s string) error { v.Set(name, s); return nil })
	}
	limit := fs.Int("limit", 100, "events per page (1-1000)")
	format := fs.String("format", "table", "table or json")
	if err := noPositional(fs, args); err != nil {
		return err
	}
	v.Set("limit", strconv.Itoa(*limit))
	q, err := admin.ParseAuditQuery(v)
	if err != nil {
		return fmt.Errorf("audit: %s", tollgate.ErrorMessage(err))
	}
	if *format != "table" && *format != "json" {
		return fmt.Errorf("audit: --format %q: want table or json", *format)
	}
	return withStore(ctx, env, *cfgPath, func(_ *config.Config, e *engines) error {
		events, next, err := e.Audit.AuditEvents(ctx, q)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		if *format == "json" {
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(admin.NewAuditPage(events, next))
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tAT\tACTOR\tACTION\tTARGET\tOUTCOME\tIP\tREASON / DETAIL")
		for _, ev := range events {
			actor := ev.ActorName
			if ev.Actor != "" && ev.Actor != ev.ActorName {
				actor = auditJoin(ev.ActorName, "("+ev.Actor+")")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.ID, ev.At.UTC().Format(time.RFC3339), auditDash(actor),
				ev.Action, auditDash(ev.Target), ev.Outcome, auditDash(ev.IP), auditDash(auditJoin(ev.Reason, ev.Detail)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if next != "" {
			fmt.Fprintf(env.Stdout, "more: tollgate audit --cursor %s (with the same filters)\n", next)
		}
		return nil
	})
}

func auditJoin(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + " " + b
}

func auditDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package meter

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// UsageReport is the JSON answer of the usage endpoints: one row per group
// and the total, money as decimal strings.
type UsageReport struct {
	Rows  []ReportRow `json:"rows"`
	Total ReportRow   `json:"total"`
}

// ReportRow is one group of a usage report. Exactly one of the key fields
// is set, named after the grouping (user_id, tenant_id, route, model or
// day); the total row has none.
type ReportRow struct {
	UserID       *string `json:"user_id,omitempty"`
	TenantID     *string `json:"tenant_id,omitempty"`
	Route        *string `json:"route,omitempty"`
	Model        *string `json:"model,omitempty"`
	Day          *string `json:"day,omitempty"`
	Requests     int64   `json:"requests"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	Images       int64   `json:"images"`
	Megapixels   float64 `json:"megapixels"`
	AudioSeconds float64 `json:"audio_seconds"`
	GPUSeconds   float64 `json:"gpu_seconds"`
	// OutputAudioSeconds is the audio in the files the calls returned.
	OutputAudioSeconds float64 `json:"output_audio_seconds"`

	Cost string `json:"cost"`
	// InFlight counts calls whose records are still open: running, or
	// left by a replica that died, until they are reconciled. Reserved is
	// what they hold against budgets. Neither is in the sums above.
	InFlight int64  `json:"in_flight"`
	Reserved string `json:"reserved"`
}

// Report reads q from the ledger as a UsageReport.
func Report(ctx context.Context, l tollgate.Ledger, q tollgate.UsageQuery) (*UsageReport, error) {
	rows, err := l.Usage(ctx, q)
	if err != nil {
		return nil, err
	}
	rep := &UsageReport{Rows: make([]ReportRow, 0, len(rows))}
	var sum tollgate.UsageRow
	for _, r := range rows {
		row := reportRow(r)
		key := r.Key
		switch q.GroupBy {
		case tollgate.GroupUser:
			row.UserID = &key
		case tollgate.GroupTenant:
			row.TenantID = &key
		case tollgate.GroupRoute:
			row.Route = &key
		case tollgate.GroupModel:
			row.Model = &key
		case tollgate.GroupDay:
			row.Day = &key
		}
		rep.Rows = append(rep.Rows, row)
		sum = addRows(sum, r)
	}
	rep.Total = reportRow(sum)
	return rep, nil
}

func reportRow(r tollgate.UsageRow) ReportRow {
	return ReportRow{Requests: r.Requests, InputTokens: r.Units.InputTokens, OutputTokens: r.Units.OutputTokens,
		Images: r.Units.Images, Megapixels: float64(r.Units.MegapixelMillis) / 1000,
		AudioSeconds: float64(r.Units.AudioMillis) / 1000, GPUSeconds: float64(r.Units.GPUMillis) / 1000,
		OutputAudioSeconds: float64(r.Units.OutputAudioMillis) / 1000, Cost: r.Cost.String(),
		InFlight: r.InFlight, Reserved: r.Reserved.String()}
}

func addRows(a, b tollgate.UsageRow) tollgate.UsageRow {
	a.Requests += b.Requests
	a.Units.InputTokens += b.Units.InputTokens
	a.Units.OutputTokens += b.Units.OutputTokens
	a.Units.Images += b.Units.Images
	a.Units.MegapixelMillis += b.Units.MegapixelMillis
	a.Units.AudioMillis += b.Units.AudioMillis
	a.Units.GPUMillis += b.Units.GPUMillis
	a.Units.OutputAudioMillis += b.Units.OutputAudioMillis
	a.Cost += b.Cost
	a.InFlight += b.InFlight
	a.Reserved += b.Reserved
	return a
}

// ParseTime reads a report bound: RFC 3339, or a date (2006-01-02, UTC
// midnight), or a month (2006-01). Empty is the zero time. EInvalid
// otherwise.
func ParseTime(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly, "2006-01"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, tollgate.Errorf(tollgate.EInvalid, "%s %q: want a date such as 2026-11-01 or an RFC 3339 time", name, s)
}

// parseWindow reads from, to and group_by of a usage request; from
// defaults to the start of the current month (UTC).
func (m *Meter) parseWindow(r *http.Request, allowed []string, def string) (tollgate.UsageQuery, error) {
	var q tollgate.UsageQuery
	v := r.URL.Query()
	var err error
	if q.From, err = ParseTime("from", v.Get("from")); err != nil {
		return q, err
	}
	if q.To, err = ParseTime("to", v.Get("to")); err != nil {
		return q, err
	}
	if q.From.IsZero() {
		q.From, _ = periodBounds(tollgate.PeriodMonth, m.now())
	}
	if !q.To.IsZero() && !q.To.After(q.From) {
		return q, tollgate.Errorf(tollgate.EInvalid, "to must be after from")
	}
	q.GroupBy = v.Get("group_by")
	if q.GroupBy == "" {
		q.GroupBy = def
	}
	ok := false
	for _, a := range allowed {
		ok = ok || q.GroupBy == a
	}
	if !ok {
		return q, tollgate.Errorf(tollgate.EInvalid, "group_by %q: want one of %s", q.GroupBy, strings.Join(allowed, ", "))
	}
	return q, nil
}

// MeUsageHandler serves GET /v1/me/usage?from=&to=&group_by=day|route|model:
// the caller's own usage only (group_by defaults to day, from to the start
// of the month).
func (m *Meter) MeUsageHandler() httpx.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p := m.principal(r)
		if p == nil {
			return tollgate.Errorf(tollgate.EUnauthorized, "a valid access token is required")
		}
		q, err := m.parseWindow(r, []string{tollgate.GroupDay, tollgate.GroupRoute, tollgate.GroupModel}, tollgate.GroupDay)
		if err != nil {
			return err
		}
		q.UserID = p.UserID
		rep, err := Report(r.Context(), m.ledger, q)
		if err != nil {
			return err
		}
		httpx.WriteJSON(w, http.StatusOK, rep)
		return nil
	}
}

// AdminUsageHandler serves GET /admin/v1/usage?from=&to=&group_by=
// user|tenant|route|model|day&user=&tenant= for role admin (group_by
// defaults to user).
func (m *Meter) AdminUsageHandler() httpx.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := m.requireAdmin(r); err != nil {
			return err
		}
		q, err := m.parseWindow(r, []string{tollgate.GroupUser, tollgate.GroupTenant, tollgate.GroupRoute,
			tollgate.GroupModel, tollgate.GroupDay}, tollgate.GroupUser)
		if err != nil {
			return err
		}
		q.UserID, q.TenantID = r.URL.Query().Get("user"), r.URL.Query().Get("tenant")
		rep, err := Report(r.Context(), m.ledger, q)
		if err != nil {
			return err
		}
		httpx.WriteJSON(w, http.StatusOK, rep)
		return nil
	}
}

func (m *Meter) principal(r *http.Request) *tollgate.Principal {
	if m.opts.Principal == nil {
		return nil
	}
	return m.opts.Principal(r)
}

// requireAdmin lets only role admin through: 401 without a caller, 403
// for any other role.
func (m *Meter) requireAdmin(r *http.Request) error {
	p := m.principal(r)
	if p == nil {
		return tollgate.Errorf(tollgate.EUnauthorized, "a valid access token is required")
	}
	if p.Role != "admin" {
		return tollgate.Errorf(tollgate.EForbidden, "the admin role is required")
	}
	return nil
}

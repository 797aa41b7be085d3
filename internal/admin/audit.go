package admin

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// AuditEventJSON is an audit event as the admin API shows it.
type AuditEventJSON struct {
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	Actor     string    `json:"actor,omitempty"`
	ActorName string    `json:"actor_name,omitempty"`
	Action    string    `json:"action"`
	Target    string    `json:"target,omitempty"`
	Outcome   string    `json:"outcome"`
	Reason    string    `json:"reason,omitempty"`
	IP        string    `json:"ip,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

// AuditPage is the answer of GET /admin/v1/audit: the events, newest
// first, and the cursor of the next page ("" after the last).
type AuditPage struct {
	Events []AuditEventJSON `json:"events"`
	Next   string           `json:"next"`
}

// NewAuditPage renders events and the next cursor.
func NewAuditPage(events []*tollgate.AuditEvent, next string) AuditPage {
	page := AuditPage{Events: make([]AuditEventJSON, 0, len(events)), Next: next}
	for _, e := range events {
		page.Events = append(page.Events, AuditEventJSON{ID: e.ID, At: e.At.UTC(), Actor: e.Actor, ActorName: e.ActorName,
			Action: e.Action, Target: e.Target, Outcome: e.Outcome, Reason: e.Reason, IP: e.IP, Detail: e.Detail})
	}
	return page
}

// auditParams are the query parameters of GET /admin/v1/audit.
var auditParams = []string{"from", "to", "actor", "action", "cursor", "limit"}

// ParseAuditQuery reads the filters of GET /admin/v1/audit (and of
// tollgate audit): from and to as RFC 3339 times or YYYY-MM-DD dates (a
// date as to includes that whole day, UTC; a time as to is exclusive),
// actor (a user ID or login name), action (e.g. login, or user.* for a
// prefix), cursor (the next of the previous page) and limit (1–1000,
// default 100). EInvalid for an unknown parameter or a bad value.
func ParseAuditQuery(v url.Values) (tollgate.AuditQuery, error) {
	var q tollgate.AuditQuery
	for k := range v {
		if !slices.Contains(auditParams, k) {
			return q, tollgate.Errorf(tollgate.EInvalid, "unknown parameter %q; known: %s", k, strings.Join(auditParams, ", "))
		}
	}
	var err error
	if q.From, err = parseInstant("from", v.Get("from"), false); err != nil {
		return q, err
	}
	if q.To, err = parseInstant("to", v.Get("to"), true); err != nil {
		return q, err
	}
	q.Actor, q.Action, q.Cursor = v.Get("actor"), v.Get("action"), v.Get("cursor")
	if s := v.Get("limit"); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 1 {
			return q, tollgate.Errorf(tollgate.EInvalid, "limit %q: want a number from 1 to 1000", s)
		}
	}
	return q, q.Validate()
}

// parseInstant parses an RFC 3339 time or a YYYY-MM-DD date (UTC); a date
// as an end is the start of the next day, so that the day is included.
func parseInstant(name, s string, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, tollgate.Errorf(tollgate.EInvalid, "%s %q: want a date (2026-11-02) or an RFC 3339 time (2026-11-02T15:04:05Z)", name, s)
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}

// listAudit answers GET /admin/v1/audit.
func (a *API) listAudit(w http.ResponseWriter, r *http.Request) error {
	q, err := ParseAuditQuery(r.URL.Query())
	if err != nil {
		return err
	}
	events, next, err := a.opts.Audit.AuditEvents(r.Context(), q)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, NewAuditPage(events, next))
	return nil
}

package admin

import (
	"context"
	"net/http"

	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// commitFunc is what a stored change still has to do once its
// transaction commits (in-memory state, fan-out to other replicas).
type commitFunc = func(context.Context)

// change makes an admin change and its audit event in one transaction:
// both are stored, or neither is and the caller gets the error. ev names
// the action and its target (fn may fill them in); change sets who acted,
// from where and the outcome. A change that fails is recorded too, with
// its error, best-effort.
func (a *API) change(r *http.Request, ev *tollgate.AuditEvent, fn func(tx tollgate.AuditTx) (commitFunc, error)) error {
	ctx := r.Context()
	a.who(r, ev)
	ev.Outcome = tollgate.AuditOutcomeOK
	var commit commitFunc
	err := a.opts.Audit.Audited(ctx, ev, func(tx tollgate.AuditTx) error {
		var err error
		commit, err = fn(tx)
		return err
	})
	if err != nil {
		failed := *ev
		failed.ID, failed.At = "", a.opts.Now()
		failed.Outcome, failed.Reason = tollgate.ErrorCode(err), tollgate.ErrorMessage(err)
		a.appendBestEffort(ctx, &failed)
		return err
	}
	auth.LogAudit(ctx, a.opts.Logger, ev)
	if commit != nil {
		commit(ctx)
	}
	return nil
}

// refused records a change refused before it reached the store (bad
// input), best-effort.
func (a *API) refused(r *http.Request, ev *tollgate.AuditEvent, err error) {
	a.who(r, ev)
	ev.Outcome, ev.Reason = outcome(err), tollgate.ErrorMessage(err)
	a.appendBestEffort(r.Context(), ev)
}

// who fills in the acting admin and the client address of r.
func (a *API) who(r *http.Request, ev *tollgate.AuditEvent) {
	if p := auth.PrincipalFrom(r.Context()); p != nil {
		ev.Actor = p.UserID
		if u, err := a.opts.Store.Users().User(r.Context(), p.UserID); err == nil {
			ev.ActorName = u.Name
		}
	}
	ev.IP = a.opts.ClientIP(r)
}

// appendBestEffort stores ev, logging (not returning) a failure.
func (a *API) appendBestEffort(ctx context.Context, ev *tollgate.AuditEvent) {
	auth.LogAudit(ctx, a.opts.Logger, ev)
	if err := a.opts.Audit.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		a.opts.Logger.ErrorContext(ctx, "audit event not stored", "action", ev.Action, "actor", ev.Actor,
			"target", ev.Target, "outcome", ev.Outcome, "err", err)
	}
}

// recordedFirst audits a change made by a handler of another feature (a
// budget) that cannot join the audit transaction: the request is recorded
// before it runs, with outcome "requested", and refused with 503 when that
// record cannot be stored; its outcome is recorded after, best-effort.
func (a *API) recordedFirst(h httpx.HandlerFunc) httpx.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		ev := &tollgate.AuditEvent{Action: tollgate.AuditAdminChange, Target: r.URL.Path, Detail: r.Method + " " + r.URL.Path, Outcome: "requested"}
		a.who(r, ev)
		auth.LogAudit(r.Context(), a.opts.Logger, ev)
		if err := a.opts.Audit.AppendAudit(r.Context(), ev); err != nil {
			a.opts.Logger.ErrorContext(r.Context(), "audit event not stored; change refused", "action", ev.Action, "target", ev.Target, "err", err)
			return tollgate.Errorf(tollgate.EUnavailable, "the audit trail cannot be written; the change was not made, try again")
		}
		err := h(w, r)
		done := *ev
		done.ID, done.At = "", a.opts.Now()
		done.Outcome, done.Reason = outcome(err), tollgate.ErrorMessage(err)
		a.appendBestEffort(r.Context(), &done)
		return err
	}
}

// requireAdmin lets only the admin role through, recording every refusal
// of an authenticated caller.
func (a *API) requireAdmin(next http.Handler) http.Handler {
	return a.opts.Auth.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := auth.PrincipalFrom(r.Context()); p.Role != "admin" {
			ev := &tollgate.AuditEvent{Action: tollgate.AuditAdminDenied, Actor: p.UserID, Target: r.URL.Path,
				Detail: r.Method + " " + r.URL.Path, Outcome: tollgate.EForbidden, Reason: "role " + p.Role + " is not admin", IP: a.opts.ClientIP(r)}
			a.appendBestEffort(r.Context(), ev)
			httpx.WriteError(w, r, a.opts.Logger, tollgate.Errorf(tollgate.EForbidden, "role admin required"))
			return
		}
		next.ServeHTTP(w, r)
	}))
}

func outcome(err error) string {
	if err == nil {
		return tollgate.AuditOutcomeOK
	}
	return tollgate.ErrorCode(err)
}

package auth

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// auditTimeout bounds the time a login or token request waits for its
// audit event to be stored.
const auditTimeout = 2 * time.Second

// record stores an audit event of an identity endpoint best-effort: a
// store that cannot write it is logged and never fails the request.
func (s *Service) record(r *http.Request, e *tollgate.AuditEvent, err error) {
	if s.opts.Audit == nil {
		return
	}
	e.IP = s.opts.ClientIP(r)
	e.Outcome = outcomeOf(err)
	if e.Reason == "" && err != nil {
		e.Reason = reasonOf(err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), auditTimeout)
	defer cancel()
	LogAudit(ctx, s.opts.Logger, e)
	if aerr := s.opts.Audit.AppendAudit(ctx, e); aerr != nil {
		s.opts.Logger.ErrorContext(ctx, "audit event not stored", "action", e.Action, "outcome", e.Outcome,
			"actor", e.Actor, "ip", e.IP, "err", aerr)
	}
}

// reasonOf is the user-safe text of err, or the OAuth error's description.
func reasonOf(err error) string {
	if e, ok := err.(oauthError); ok {
		return cmp.Or(e.Description, e.Code)
	}
	return tollgate.ErrorMessage(err)
}

// outcomeOf is the code the caller got for err: an OAuth error code, a
// tollgate error code, or AuditOutcomeOK.
func outcomeOf(err error) string {
	if e, ok := err.(oauthError); ok {
		return e.Code
	}
	return cmp.Or(tollgate.ErrorCode(err), tollgate.AuditOutcomeOK)
}

// LogAudit writes e as an "audit" log line, so that logins and changes
// can be followed in the logs too.
func LogAudit(ctx context.Context, log *slog.Logger, e *tollgate.AuditEvent) {
	log.InfoContext(ctx, "audit", "action", e.Action, "outcome", e.Outcome, "actor", e.Actor, "actor_name", e.ActorName,
		"target", e.Target, "reason", e.Reason, "ip", e.IP)
}

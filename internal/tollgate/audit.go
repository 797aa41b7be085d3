package tollgate

import (
	"context"
	"strings"
	"time"
)

// Audit actions. Logins and token requests are recorded best-effort (a
// store that cannot write never turns a good login away); changes made
// through the admin API are recorded in the transaction of the change.
const (
	AuditLogin             = "login"         // POST /auth/login
	AuditRefresh           = "token.refresh" // grant_type=refresh_token
	AuditClientCredentials = "token.client"  // grant_type=client_credentials
	AuditRevoke            = "token.revoke"  // POST /oauth/revoke, or an admin revoking a jti
	AuditUserCreate        = "user.create"   //
	AuditUserUpdate        = "user.update"   // role, plan or password
	AuditUserDisable       = "user.disable"  //
	AuditUserEnable        = "user.enable"   //
	AuditUserRevoke        = "user.revoke"   // every token of a user
	AuditTenantCreate      = "tenant.create" //
	AuditTenantUpdate      = "tenant.update" // its name
	AuditTenantDisable     = "tenant.disable"
	AuditTenantEnable      = "tenant.enable"
	AuditKeyCreate         = "key.create"   //
	AuditKeyRevoke         = "key.revoke"   //
	AuditBanAdd            = "ban.add"      //
	AuditBanLift           = "ban.lift"     //
	AuditAdminChange       = "admin.change" // another admin API change (e.g. a budget)
	AuditAdminDenied       = "admin.denied" // a non-admin called the admin API
)

// AuditOutcomeOK is the outcome of an event that succeeded; a failed one
// has the error code its caller got.
const AuditOutcomeOK = "ok"

const (
	auditMaxField      = 512  // longest stored text field
	auditMaxLimit      = 1000 // largest page
	auditDefaultLimit  = 100  // page size when none is asked
	auditActionPattern = "abcdefghijklmnopqrstuvwxyz._*"
)

// AuditEvent is one entry of the audit trail. It never holds a password,
// a token or an API key secret.
type AuditEvent struct {
	// ID orders events (later events have larger IDs) and is the paging
	// cursor. Set by the store.
	ID string
	// At is when it happened. Set by the store when zero.
	At time.Time
	// Actor is the user ID of who acted, "" when unknown (a login with an
	// unknown name).
	Actor string
	// ActorName is the login name who acted gave, e.g. the name a failed
	// login tried.
	ActorName string
	// Action is one of the Audit* actions.
	Action string
	// Target is what the action was done to: a user, tenant or key ID, a
	// refresh-token family, a jti, an IP address.
	Target string
	// Outcome is AuditOutcomeOK or the error code the caller got.
	Outcome string
	// Reason says why an action failed, for the operator (the caller may
	// have been told less, e.g. "invalid username or password").
	Reason string
	// IP is the client address of the request.
	IP string
	// Detail is a short description of the change (e.g. "role=admin").
	Detail string
}

// Validate checks e before it is stored, and shortens long fields.
// EInvalid without an action or an outcome.
func (e *AuditEvent) Validate() error {
	if e.Action == "" || e.Outcome == "" {
		return Errorf(EInvalid, "an audit event needs an action and an outcome")
	}
	for _, f := range []*string{&e.Actor, &e.ActorName, &e.Action, &e.Target, &e.Outcome, &e.Reason, &e.IP, &e.Detail} {
		if len(*f) > auditMaxField {
			*f = (*f)[:auditMaxField]
		}
	}
	return nil
}

// AuditQuery selects audit events. Zero fields do not filter.
type AuditQuery struct {
	From time.Time // events at or after From
	To   time.Time // events before To
	// Actor matches the actor's user ID or the login name it gave.
	Actor string
	// Action matches one action, or every action that starts with a
	// prefix when it ends in "*" ("user.*").
	Action string
	// Cursor is the Next of the previous page.
	Cursor string
	// Limit is the page size. Defaults to 100; at most 1000.
	Limit int
}

// Validate checks q and fills its defaults. EInvalid for a limit outside
// 0–1000, an action with characters no action has, To not after From, or a
// cursor that is not one a store returned.
func (q *AuditQuery) Validate() error {
	switch {
	case q.Limit < 0 || q.Limit > auditMaxLimit:
		return Errorf(EInvalid, "limit must be between 1 and %d", auditMaxLimit)
	case strings.Trim(q.Action, auditActionPattern) != "" || strings.Contains(strings.TrimSuffix(q.Action, "*"), "*"):
		return Errorf(EInvalid, "action %q: want an action such as login or user.create, or a prefix such as user.*", q.Action)
	case !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From):
		return Errorf(EInvalid, "to must be after from")
	case strings.Trim(q.Cursor, "0123456789") != "" || len(q.Cursor) > 19:
		return Errorf(EInvalid, "cursor %q is not one this API returned", q.Cursor)
	}
	if q.Limit == 0 {
		q.Limit = auditDefaultLimit
	}
	return nil
}

// ActionPrefix returns the prefix of a "prefix*" action and true, or the
// action and false.
func (q *AuditQuery) ActionPrefix() (string, bool) {
	p, ok := strings.CutSuffix(q.Action, "*")
	return p, ok
}

// AuditTx is the stores of one transaction of AuditStore.Audited.
type AuditTx interface {
	Tenants() TenantStore
	Users() UserStore
	APIKeys() APIKeyStore
	RefreshTokens() RefreshTokenStore
	Revocations() RevocationStore
	Bans() BanStore
}

// AuditStore keeps the audit trail.
type AuditStore interface {
	// AppendAudit stores e, setting its ID and (when zero) At. EInvalid
	// when e does not validate.
	AppendAudit(ctx context.Context, e *AuditEvent) error
	// Audited runs change with the stores of one transaction and stores e
	// in that transaction: the change and its audit event persist
	// together, or neither does. An error of change rolls back and is
	// returned as it is; EInvalid when e does not validate (change does
	// not run). e is stored after change returns, so change may fill in
	// what it learns (the ID of what it created). change must not use
	// stores outside tx.
	Audited(ctx context.Context, e *AuditEvent, change func(tx AuditTx) error) error
	// AuditEvents returns the events q selects, newest first, at most
	// q.Limit of them, and the cursor of the next page ("" after the
	// last). EInvalid when q does not validate.
	AuditEvents(ctx context.Context, q AuditQuery) (events []*AuditEvent, next string, err error)
}

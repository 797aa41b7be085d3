package tollgate

import (
	"context"
	"time"
)

// UsageRecord is the billable record of one call. It is appended open
// (Settled false, Cost zero, Reserved set) before the call is forwarded and
// settled after it ended, or reconciled with Outcome ResultUnknown at the
// next start when the process died in between.
type UsageRecord struct {
	RequestID string
	// NewID says RequestID was generated for this call (Call.NewID): a
	// ledger need not look for an earlier record with it. Not stored.
	NewID    bool
	Start    time.Time
	End      time.Time // zero while open
	TenantID string    // "" on public routes
	UserID   string    // "" on public routes
	Route    string
	Model    string
	// Replica is the lease id of the process that opened the record, so
	// that another replica reconciles it when that lease expires; "" on
	// records written before replicas held leases.
	Replica string
	// Held marks the record of a job (Call.Held): it stays open while
	// the job is queued or running, across restarts, and only its job's
	// end settles it (SettleHeld); Reconcile and ReconcileExpired leave
	// it open.
	Held bool
	// Outcome is one of the Result* constants; "" while open.
	Outcome   string
	Status    int
	BytesIn   int64
	BytesOut  int64
	LatencyMS int64
	Units     Units
	// Cost is what the call was charged; zero while open.
	Cost Money
	// Reserved is the most the call could cost, held against budgets while
	// it ran.
	Reserved Money
	Settled  bool
	// Seq orders settled records for export; the store assigns it when the
	// record is settled, increasing in commit order. Zero while open.
	Seq int64
}

// BudgetScope says whom a budget limits.
type BudgetScope string

// Budget scopes.
const (
	ScopeUser   BudgetScope = "user"
	ScopeTenant BudgetScope = "tenant"
)

// Budget periods: calendar day or month in UTC, or a total credit.
const (
	PeriodDay   = "day"
	PeriodMonth = "month"
	PeriodTotal = "total"
)

// UsageQuery selects records for reports and invoices. Records are
// selected by Start in [From, To); a zero bound is open.
type UsageQuery struct {
	From     time.Time
	To       time.Time
	UserID   string // "" for every user
	TenantID string // "" for every tenant
	Route    string // "" for every route
	// GroupBy is one of the Group* constants, or "" for a single total row.
	GroupBy string
}

// Report groupings.
const (
	GroupDay    = "day" // Key is the UTC date, 2006-01-02
	GroupUser   = "user"
	GroupTenant = "tenant"
	GroupRoute  = "route"
	GroupModel  = "model"
	// GroupLine groups by user, route and model (invoice line items);
	// Key is empty and UserID, Route and Model are set.
	GroupLine = "line"
)

// UsageRow is one group of settled records.
type UsageRow struct {
	Key      string // the group's value; "" for the total row
	UserID   string // set for GroupLine
	Route    string // set for GroupLine
	Model    string // set for GroupLine
	Requests int64  // settled records
	Units    Units  // of settled records; Megapixels is derived from MegapixelMillis
	Cost     Money  // of settled records
	// InFlight counts the group's open records (calls running, or left
	// open by a replica that died and not yet reconciled), and Reserved
	// is what they hold against budgets. They are in none of the sums
	// above.
	InFlight int64
	Reserved Money
}

// Ledger stores usage records. It is the truth that live budget counters are
// rebuilt from. Every implementation passes storetest.RunLedger.
type Ledger interface {
	// Write appends the open records and settles the settled ones in one
	// transaction, so a batch costs one commit (group commit). An open
	// record whose RequestID exists is EConflict and fails the batch; a
	// record with NewID set may be appended without looking.
	// Settling is idempotent: a record already settled stays as it was,
	// and a record that was never appended is inserted settled. Seq is
	// assigned to newly settled records. EUnavailable when the records
	// cannot be written now (a full disk, an unreachable database); the
	// batch may be retried.
	Write(ctx context.Context, open, settled []*UsageRecord) error
	// Reconcile settles every open record whose Start is before
	// startedBefore, that names no Replica (those are
	// ReconcileExpired's) and is not Held, as left by a process that died: Outcome
	// ResultUnknown, End at, and Cost its Reserved when chargeReserved,
	// else zero. It returns the records it settled.
	Reconcile(ctx context.Context, startedBefore, at time.Time, chargeReserved bool) ([]*UsageRecord, error)
	// Committed returns what budgets of scope/id have committed for calls
	// started at or after since: the Cost of settled records plus the
	// Reserved of open ones. EInvalid for an unknown scope.
	Committed(ctx context.Context, scope BudgetScope, id string, since time.Time) (Money, error)
	// UnitTotals sums the units and requests of one user's billable
	// records (settled with outcome ok or cancelled) started at or after
	// since, for graduated tiers and free units.
	UnitTotals(ctx context.Context, userID string, since time.Time) (UsageRow, error)
	// Usage groups records as q says, ordered by Key (GroupLine: by user,
	// route, model): settled ones in the sums, open ones as InFlight. A
	// store of one process sees its own open records and those left in
	// the table. EInvalid for an unknown grouping.
	Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error)
	// RenewLease creates or extends the lease of replica until expires.
	// While it holds, no other replica reconciles the records it opened.
	RenewLease(ctx context.Context, replica string, expires time.Time) error
	// EndLease removes the lease of replica (a clean stop); records it
	// left open become reconcilable at once.
	EndLease(ctx context.Context, replica string) error
	// ReconcileExpired settles, as Reconcile does (ResultUnknown, End at,
	// Cost per chargeReserved), every open record that is not Held, whose
	// Replica is set and holds no lease valid after at, removes the leases
	// expired by at, and returns the records it settled.
	ReconcileExpired(ctx context.Context, at time.Time, chargeReserved bool) ([]*UsageRecord, error)
	// SettleHeld settles the open Held record r.RequestID with r's end,
	// outcome, status, bytes, latency, units and cost (its start, owner,
	// route, model and reservation stay as opened), numbering it as Write
	// does, only if it is still open: true when this call settled it,
	// false when it was settled already (by another process, or
	// reconciled). ENotFound when there is no such record.
	SettleHeld(ctx context.Context, r *UsageRecord) (bool, error)
	// HeldOpen returns every open Held record, oldest first: those of
	// this process and those left by processes that stopped.
	HeldOpen(ctx context.Context) ([]*UsageRecord, error)
	// MoveHeld makes the open Held record requestID name the replica to
	// instead of from (its job is run, or taken over, by another replica
	// than the one that opened it) and reports whether it did: false when
	// the record is settled or names another replica than from, so of
	// replicas moving it at once one does. ENotFound when there is no
	// such record.
	MoveHeld(ctx context.Context, requestID, from, to string) (bool, error)
	// HeldExpired returns the open Held records whose Replica is set and
	// holds no lease valid after at, oldest first.
	HeldExpired(ctx context.Context, at time.Time) ([]*UsageRecord, error)
	// Export returns up to limit settled records with Seq greater than
	// after, ordered by Seq, so an export resumes from the last Seq seen.
	Export(ctx context.Context, after int64, limit int) ([]*UsageRecord, error)
	// Record returns one record by request id. ENotFound if absent.
	Record(ctx context.Context, requestID string) (*UsageRecord, error)
}

// BudgetOverride replaces the plan's budget of one user or tenant.
type BudgetOverride struct {
	Scope  BudgetScope
	ID     string // user or tenant id
	Amount Money
	Period string // PeriodDay, PeriodMonth or PeriodTotal
	// Alerts are soft thresholds in percent; nil means the plan's.
	Alerts    []int
	UpdatedAt time.Time
}

// BudgetStore keeps per-user and per-tenant budget overrides and which
// budget alerts were sent.
type BudgetStore interface {
	// SetBudget creates or replaces the override of b.Scope/b.ID; UpdatedAt
	// is set. EInvalid for an unknown scope or period or a negative amount.
	SetBudget(ctx context.Context, b *BudgetOverride) error
	// Budget returns one override. ENotFound if there is none.
	Budget(ctx context.Context, scope BudgetScope, id string) (*BudgetOverride, error)
	// Budgets lists every override ordered by scope and id.
	Budgets(ctx context.Context) ([]*BudgetOverride, error)
	// DeleteBudget removes an override, so the plan's budget applies again.
	// ENotFound if there is none.
	DeleteBudget(ctx context.Context, scope BudgetScope, id string) error
	// MarkAlert records that the alert at percent for scope/id in the
	// period starting at periodStart was sent. It returns true only to the
	// first caller across every replica, so each alert is sent once.
	MarkAlert(ctx context.Context, scope BudgetScope, id string, periodStart time.Time, percent int) (bool, error)
}

// BudgetCounter is one live budget counter: what a user or tenant has
// committed (spent plus reserved) in one period.
type BudgetCounter struct {
	Key   string
	Limit Money
}

// BudgetCounters hold live budget counters: in process on one node, in
// Redis in cluster mode. The ledger is the truth; a counter that does not
// exist (never loaded, or lost by Redis) is loaded from it with Init.
type BudgetCounters interface {
	// Reserve adds amount to every counter if each then stays within its
	// Limit, atomically across all of them and across replicas. Nothing
	// changes when some counters are missing (their indexes are returned)
	// or when one has no room (refused is its index; -1 when granted).
	Reserve(ctx context.Context, counters []BudgetCounter, amount Money) (missing []int, refused int, err error)
	// Init sets a missing counter to value, valid until expires (zero:
	// forever); a counter that exists is left as it is.
	Init(ctx context.Context, key string, value Money, expires time.Time) error
	// Adjust adds delta (negative to release) to each counter that exists
	// and returns the new values, -1 for a missing counter.
	Adjust(ctx context.Context, keys []string, delta Money) ([]Money, error)
}

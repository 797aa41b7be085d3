package tollgate

import (
	"context"
	"net/http"
	"time"
)

// Authenticator turns a request's credentials (a bearer access token, or an
// API key where allowed) into a verified Principal. It returns EUnauthorized
// for a missing, malformed, expired or revoked credential.
type Authenticator interface {
	Authenticate(ctx context.Context, r *http.Request) (*Principal, error)
}

// Call is one request on a configured route, as features that admit, limit
// and meter it see it. The data plane fills it before forwarding.
type Call struct {
	RequestID string
	// NewID says RequestID was generated for this call with at least 80
	// random bits, not taken from a caller, so no usage record holds it.
	NewID     bool
	Start     time.Time
	Principal *Principal // nil on public routes
	ClientIP  string
	Route     string // route name
	Model     string // openai routes: the requested model
	Method    string
	Path      string
	BytesIn   int64
	// MaxOutputTokens is the request's max_tokens (or max_completion_tokens)
	// when it set one; 0 otherwise.
	MaxOutputTokens int64
	// Body is the request body when the data plane read it (openai routes,
	// routes with rules or schemas); nil when it was streamed through.
	Body []byte
	// Entry is what was decided about the request before it was
	// authenticated; nil when it passed no gate.
	Entry *Entry
	// Held marks a job's call: its usage record stays open across
	// restarts until the job ends, and is settled with HeldSettler, by
	// whichever process ends the job, exactly once.
	Held bool
}

// Outcome of a call, handed to the release function of every Admission.
type Outcome struct {
	Status int // HTTP status sent to the client
	// UpstreamStatus is the status the upstream answered with; 0 when no
	// upstream answered (unreachable, timed out, not forwarded).
	UpstreamStatus int
	Result         string // ok, upstream_error, rejected, cancelled, unknown
	BytesOut       int64
	// BytesIn is the request body's length as read by the end of the call:
	// for a streamed body of unknown length, what was read of it.
	BytesIn    int64
	End        time.Time
	UpstreamMS int64
	Units      Units
}

// Outcome results.
const (
	ResultOK            = "ok"
	ResultUpstreamError = "upstream_error"
	ResultRejected      = "rejected"
	ResultCancelled     = "cancelled"
	ResultUnknown       = "unknown"
)

// Units are the billable quantities of a call.
type Units struct {
	InputTokens  int64
	OutputTokens int64
	Images       int64
	Megapixels   float64 // reporting only; priced via MegapixelMillis
	// MegapixelMillis is megapixels × 1000, an integer for pricing.
	MegapixelMillis int64
	// AudioMillis is the audio uploaded with the call, OutputAudioMillis
	// the audio in the files it returned.
	AudioMillis       int64
	GPUMillis         int64
	OutputAudioMillis int64
}

// Admission is a step that decides whether a call may go to the upstream
// (rate limits, concurrency caps, budgets, the ledger). Admit returns an
// *Error (ERateLimited, EQuota, …) to refuse; otherwise a release function
// that the data plane calls exactly once with the outcome, after the
// response ended, failed or the client went away.
type Admission interface {
	Admit(ctx context.Context, c *Call) (release func(context.Context, *Outcome), err error)
}

// Admissions run in order as one Admission: a call is admitted when each
// admits it; at the first refusal the ones that admitted it are released
// with a rejected outcome and the refusal is returned, so a later step
// (a budget) holds nothing for a call an earlier one (a rate limit)
// refused. The release function releases each of them.
type Admissions []Admission

// Admit admits c through every admission in order.
func (as Admissions) Admit(ctx context.Context, c *Call) (func(context.Context, *Outcome), error) {
	releases := make([]func(context.Context, *Outcome), 0, len(as))
	all := func(ctx context.Context, o *Outcome) {
		for _, r := range releases {
			r(ctx, o)
		}
	}
	for _, a := range as {
		r, err := a.Admit(ctx, c)
		if err != nil {
			all(ctx, &Outcome{Result: ResultRejected, End: c.Start})
			return nil, err
		}
		if r != nil {
			releases = append(releases, r)
		}
	}
	return all, nil
}

// HeldSettler is an Admission that settles held calls (jobs) from the
// ledger rather than from memory, so that any process, also one started
// after the process that admitted the call died, settles a job once.
type HeldSettler interface {
	Admission
	// SettleHeld prices out and settles the open held record requestID of
	// a call by p, unless it is settled already: it reports whether this
	// call settled it, so exactly one of several processes trying
	// releases the reservation. ENotFound when there is no such record.
	SettleHeld(ctx context.Context, requestID string, p *Principal, out *Outcome) (bool, error)
	// HeldOpen returns every open held record.
	HeldOpen(ctx context.Context) ([]*UsageRecord, error)
	// HoldHere makes the open held record requestID name this process,
	// which runs its job now, so that other replicas take the job over
	// only once this one's lease lapsed. Nothing on one node.
	HoldHere(ctx context.Context, requestID string) error
	// HeldOfStopped returns the open held records that name a replica
	// whose lease lapsed (none on one node), for TakeHeld.
	HeldOfStopped(ctx context.Context) ([]*UsageRecord, error)
	// TakeHeld makes r, a record HeldOfStopped returned, name this
	// process: true for the one of several replicas trying that does.
	TakeHeld(ctx context.Context, r *UsageRecord) (bool, error)
}

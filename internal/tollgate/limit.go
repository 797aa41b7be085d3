package tollgate

import (
	"context"
	"time"
)

// Rate is a GCRA limit: a burst of N and N per Period sustained.
type Rate struct {
	N      int
	Period time.Duration
}

// RateKey is one counter checked by a rate decision, with its limit.
type RateKey struct {
	Key  string
	Rate Rate
}

// RateDecision is the outcome of RateStore.Allow. Limit, Remaining and Reset
// describe the tightest key (the one with the least remaining), for the
// RateLimit-* response headers.
type RateDecision struct {
	Allowed   bool
	Limit     int
	Remaining int
	// Reset is the time until the tightest key is fully replenished.
	Reset time.Duration
	// RetryAfter, when refused, is the time until every refusing key would
	// admit the call.
	RetryAfter time.Duration
	// Key is the refusing key (refused) or the tightest key (admitted).
	Key string
}

// RateStore decides GCRA limits. One Allow call decides every key that
// applies to a request atomically: the call is admitted only when every key
// admits it, and only then counts against all of them. Implementations: in
// process (one node) and Redis (exact across replicas). Allow returns a
// plain (non-*Error) error when the store cannot be reached.
type RateStore interface {
	Allow(ctx context.Context, keys []RateKey) (RateDecision, error)
}

// RateSeed is the state of one rate key carried from one store to another:
// Busy is the time until the key is fully replenished (the GCRA
// theoretical arrival time minus now).
type RateSeed struct {
	Key  string
	Busy time.Duration
}

// RateSeeder is a RateStore that can take over state decided by another
// store, so that moving decisions to it grants no fresh burst. The Redis
// engine offers it; the limiter seeds it with the local fallback's state
// when Redis returns.
type RateSeeder interface {
	// Seed makes each key at least as spent as its seed says (a key
	// already more spent keeps its state). It returns a plain error when
	// the store cannot be reached.
	Seed(ctx context.Context, seeds []RateSeed) error
}

// SlotKey is one concurrency counter with its cap.
type SlotKey struct {
	Key   string
	Limit int
}

// ConcurrencyStore counts calls in flight. A slot is held under a lease id;
// leases expire after their ttl unless renewed, so the slots of a crashed
// replica come back. Methods return a plain error when the store cannot be
// reached.
type ConcurrencyStore interface {
	// Acquire takes a slot for id under every key, or under none: when a
	// key is full it returns that key's name and takes nothing.
	Acquire(ctx context.Context, id string, keys []SlotKey, ttl time.Duration) (full string, err error)
	// Renew extends the leases of ids (each under its keys) by ttl.
	Renew(ctx context.Context, leases map[string][]string, ttl time.Duration) error
	// Release frees id's slot under every key; releasing twice is harmless.
	Release(ctx context.Context, id string, keys []string) error
}

// CounterStore keeps small counters with the time of their last increment,
// expiring after a ttl (failed logins per account and per IP).
type CounterStore interface {
	// Incr adds one to key, records now as its last time and keeps it for
	// ttl; it returns the new count.
	Incr(ctx context.Context, key string, now time.Time, ttl time.Duration) (int, error)
	// Counters returns the counters of keys, in order; absent keys are zero.
	Counters(ctx context.Context, keys ...string) ([]Counter, error)
	// Delete removes keys.
	Delete(ctx context.Context, keys ...string) error
}

// Counter is one CounterStore entry.
type Counter struct {
	Count int
	Last  time.Time
}

// Ban refuses every request from an IP address until it expires.
type Ban struct {
	IP        string // an address or a CIDR prefix
	Reason    string
	Until     time.Time
	CreatedAt time.Time
}

// BanStore keeps bans where every replica can read them.
type BanStore interface {
	// PutBan stores b, replacing a ban of the same IP.
	PutBan(ctx context.Context, b *Ban) error
	// DeleteBan lifts the ban of ip. ENotFound if there is none.
	DeleteBan(ctx context.Context, ip string) error
	// Bans lists the bans that end after now.
	Bans(ctx context.Context, now time.Time) ([]*Ban, error)
}

// Event kinds carried by a Bus.
const (
	EventRevokeToken   = "revoke_token"   // Issuer, JTI, Until (the token's exp)
	EventRevokeFamily  = "revoke_family"  // FamilyID, UserID
	EventRevokeUser    = "revoke_user"    // UserID, At: tokens issued before At are invalid
	EventDisableUser   = "disable_user"   // UserID
	EventEnableUser    = "enable_user"    // UserID
	EventDisableTenant = "disable_tenant" // TenantID
	EventEnableTenant  = "enable_tenant"  // TenantID
	EventBan           = "ban"            // IP, Until, Reason
	EventUnban         = "unban"          // IP
)

// Event is a change that every replica must apply to its in-memory state
// (denylist, ban set).
type Event struct {
	Kind     string    `json:"kind"`
	Issuer   string    `json:"iss,omitempty"`
	JTI      string    `json:"jti,omitempty"`
	FamilyID string    `json:"family,omitempty"`
	UserID   string    `json:"user,omitempty"`
	TenantID string    `json:"tenant,omitempty"`
	IP       string    `json:"ip,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at,omitzero"`
	Until    time.Time `json:"until,omitzero"`
}

// Bus fans events out to every replica: in process it calls the
// subscribers directly; in cluster mode it is Redis pub/sub.
type Bus interface {
	// Publish delivers e to every subscriber of every replica, this one
	// included. It returns a plain error when the bus cannot be reached.
	Publish(ctx context.Context, e Event) error
	// Subscribe calls handle for each event, and resync once subscribed
	// and after every reconnect (events may have been missed meanwhile;
	// resync reloads the full state from the store). stop ends the
	// subscription.
	Subscribe(handle func(Event), resync func()) (stop func())
}

// LimitAdmitter is a RateStore that can also take concurrency slots in the
// same atomic step: the rate keys admit and the slots are free, and then
// both count; or neither does. The Redis engine offers it so that a call
// costs one round trip; the slots are released through its
// ConcurrencyStore.
type LimitAdmitter interface {
	// AdmitLimits decides rates as RateStore.Allow and, when they admit,
	// takes a slot for id under every slot key as ConcurrencyStore.Acquire.
	// full names a full slot key (then d.Allowed is false and nothing
	// counted).
	AdmitLimits(ctx context.Context, id string, rates []RateKey, slots []SlotKey, ttl time.Duration) (d RateDecision, full string, err error)
}

package limit

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// FanoutOptions configure a Fanout.
type FanoutOptions struct {
	// Bus reaches every replica; nil is in process (one node).
	Bus tollgate.Bus
	// Apply applies a revocation event to this replica's in-memory denylist
	// (internal/token's Denylist). Required.
	Apply func(tollgate.Event)
	// Reload rebuilds the denylist from the store: called once subscribed,
	// after every reconnect of the bus and every ResyncInterval. Optional.
	Reload func(ctx context.Context) error
	// ResyncInterval between full reloads, in case an event was lost.
	// Defaults to 60s.
	ResyncInterval time.Duration
	Logger         *slog.Logger // Defaults to slog.Default().
}

// Fanout carries revocations and user state changes to every replica's
// in-memory denylist, so a request needs no store or Redis round trip to be
// refused. The caller persists the change in the store first, then calls
// the method here.
type Fanout struct {
	opts FanoutOptions
	mu   sync.Mutex
	sub  *subscription
}

// NewFanout returns a Fanout; Start subscribes it.
func NewFanout(opts FanoutOptions) *Fanout {
	if opts.Bus == nil {
		opts.Bus = NewMemoryBus()
	}
	opts.ResyncInterval = cmp.Or(opts.ResyncInterval, time.Minute)
	opts.Logger = cmp.Or(opts.Logger, slog.Default())
	return &Fanout{opts: opts}
}

// Start subscribes to revocation events, reloads the denylist, and reloads
// it again every ResyncInterval until Stop.
func (f *Fanout) Start(ctx context.Context) error {
	if f.opts.Apply == nil {
		return fmt.Errorf("revocation fan-out: Apply is required")
	}
	f.sub = subscribe(ctx, f.opts.Bus, f.handle, f.reload, f.opts.ResyncInterval)
	return nil
}

// Stop ends what Start began.
func (f *Fanout) Stop() {
	f.sub.Stop()
}

func (f *Fanout) handle(e tollgate.Event) {
	switch e.Kind {
	case tollgate.EventRevokeToken, tollgate.EventRevokeFamily, tollgate.EventRevokeUser,
		tollgate.EventDisableUser, tollgate.EventEnableUser, tollgate.EventDisableTenant, tollgate.EventEnableTenant:
		f.opts.Apply(e)
	}
}

func (f *Fanout) reload(ctx context.Context) {
	if f.opts.Reload == nil {
		return
	}
	f.mu.Lock() // one reload at a time
	defer f.mu.Unlock()
	if err := f.opts.Reload(ctx); err != nil {
		f.opts.Logger.Warn("reload denylist", "err", err)
	}
}

// publish applies e here at once (so this replica never waits on the bus)
// and sends it to the others.
func (f *Fanout) publish(ctx context.Context, e tollgate.Event) error {
	f.opts.Apply(e)
	return f.Publish(ctx, e)
}

// Publish sends e to every replica (this one included) without applying it
// here first; for callers that already updated their own denylist, such as
// internal/auth's Options.Publish hook. When the bus is down the other
// replicas catch up at their next reload.
func (f *Fanout) Publish(ctx context.Context, e tollgate.Event) error {
	if err := f.opts.Bus.Publish(ctx, e); err != nil {
		return fmt.Errorf("publish %s: %w", e.Kind, err)
	}
	return nil
}

// Denylister is what the fan-out changes in internal/token's Denylist.
type Denylister interface {
	RevokeToken(iss, jti string, exp time.Time)
	RevokeUserTokens(userID string, t time.Time)
	DisableUser(userID string)
	EnableUser(userID string)
	DisableTenant(tenantID string)
	EnableTenant(tenantID string)
}

// ApplyTo returns an Apply function for FanoutOptions that updates d.
// Family revocations need nothing here: the store refuses the family's
// refresh tokens, and its access tokens expire on their own.
func ApplyTo(d Denylister) func(tollgate.Event) {
	return func(e tollgate.Event) {
		switch e.Kind {
		case tollgate.EventRevokeToken:
			d.RevokeToken(e.Issuer, e.JTI, e.Until)
		case tollgate.EventRevokeUser:
			d.RevokeUserTokens(e.UserID, e.At)
		case tollgate.EventDisableUser:
			d.DisableUser(e.UserID)
		case tollgate.EventEnableUser:
			d.EnableUser(e.UserID)
		case tollgate.EventDisableTenant:
			d.DisableTenant(e.TenantID)
		case tollgate.EventEnableTenant:
			d.EnableTenant(e.TenantID)
		}
	}
}

// RevokeToken denies the access token (issuer, jti) until exp everywhere.
func (f *Fanout) RevokeToken(ctx context.Context, issuer, jti string, exp time.Time) error {
	return f.publish(ctx, tollgate.Event{Kind: tollgate.EventRevokeToken, Issuer: issuer, JTI: jti, Until: exp})
}

// RevokeFamily tells every replica that a refresh-token family of userID is
// revoked.
func (f *Fanout) RevokeFamily(ctx context.Context, familyID, userID string) error {
	return f.publish(ctx, tollgate.Event{Kind: tollgate.EventRevokeFamily, FamilyID: familyID, UserID: userID})
}

// RevokeUser invalidates every token of userID issued before at.
func (f *Fanout) RevokeUser(ctx context.Context, userID string, at time.Time) error {
	return f.publish(ctx, tollgate.Event{Kind: tollgate.EventRevokeUser, UserID: userID, At: at})
}

// DisableUser refuses every token of userID until EnableUser.
func (f *Fanout) DisableUser(ctx context.Context, userID string) error {
	return f.publish(ctx, tollgate.Event{Kind: tollgate.EventDisableUser, UserID: userID})
}

// EnableUser lifts DisableUser.
func (f *Fanout) EnableUser(ctx context.Context, userID string) error {
	return f.publish(ctx, tollgate.Event{Kind: tollgate.EventEnableUser, UserID: userID})
}

package tollgate

import (
	"context"
	"time"
)

// Webhook events a prediction's webhook_events_filter may name.
const (
	WebhookStart     = "start"     // the prediction started running
	WebhookOutput    = "output"    // new output (throttled)
	WebhookLogs      = "logs"      // new log lines (throttled)
	WebhookCompleted = "completed" // it reached a final status; always the last one sent
)

// WebhookEvents lists the events in their order of a prediction's life.
func WebhookEvents() []string {
	return []string{WebhookStart, WebhookOutput, WebhookLogs, WebhookCompleted}
}

// IsWebhookEvent reports whether e is one of WebhookEvents.
func IsWebhookEvent(e string) bool {
	switch e {
	case WebhookStart, WebhookOutput, WebhookLogs, WebhookCompleted:
		return true
	}
	return false
}

// WebhookSecret is a user's webhook signing secret. Each user (tenant and
// user ID) has at most one.
type WebhookSecret struct {
	TenantID string
	UserID   string
	// Secret is the raw key, or, when Encrypted, the key sealed with the
	// configured passphrase (the way signing keys are).
	Secret    []byte
	Encrypted bool
	CreatedAt time.Time
}

// Validate reports EInvalid unless s names its user and holds a secret.
func (s *WebhookSecret) Validate() error {
	switch {
	case s.TenantID == "" || s.UserID == "":
		return Errorf(EInvalid, "a webhook secret needs a tenant and a user")
	case len(s.Secret) == 0:
		return Errorf(EInvalid, "a webhook secret must not be empty")
	}
	return nil
}

// WebhookSecretStore keeps the users' webhook signing secrets.
type WebhookSecretStore interface {
	// WebhookSecret returns the secret of a user. ENotFound if it has none.
	WebhookSecret(ctx context.Context, tenantID, userID string) (*WebhookSecret, error)
	// EnsureWebhookSecret stores s unless its user has a secret already,
	// and returns the user's stored secret: s, or the one that was there
	// (so concurrent callers all get the same). EInvalid if s is invalid.
	EnsureWebhookSecret(ctx context.Context, s *WebhookSecret) (*WebhookSecret, error)
	// PutWebhookSecret stores s as its user's secret, replacing any other
	// (a rotation). EInvalid if s is invalid.
	PutWebhookSecret(ctx context.Context, s *WebhookSecret) error
}

// WebhookDelivery is a webhook message not yet delivered, kept so that it
// survives a restart. The process delivering it holds a lease on it until
// LeaseUntil; after that any process may claim it.
type WebhookDelivery struct {
	ID           string // the webhook-id, the same for every attempt
	TenantID     string // the owner, whose secret signs it
	UserID       string
	PredictionID string
	Event        string // one of WebhookEvents
	URL          string
	Body         []byte
	Attempts     int // attempts made so far
	CreatedAt    time.Time
	LeaseUntil   time.Time
}

// Validate reports EInvalid unless d is complete.
func (d *WebhookDelivery) Validate() error {
	switch {
	case d.ID == "":
		return Errorf(EInvalid, "a webhook delivery needs an id")
	case d.TenantID == "" || d.UserID == "":
		return Errorf(EInvalid, "a webhook delivery needs a tenant and a user")
	case d.PredictionID == "":
		return Errorf(EInvalid, "a webhook delivery needs a prediction id")
	case !IsWebhookEvent(d.Event):
		return Errorf(EInvalid, "unknown webhook event %q", d.Event)
	case d.URL == "":
		return Errorf(EInvalid, "a webhook delivery needs a url")
	case d.Attempts < 0:
		return Errorf(EInvalid, "webhook attempts must not be negative")
	}
	return nil
}

// WebhookDeliveryStore keeps pending webhook deliveries.
type WebhookDeliveryStore interface {
	// CreateWebhookDelivery stores d, setting CreatedAt when zero.
	// EInvalid if d is invalid, EConflict if its ID exists.
	CreateWebhookDelivery(ctx context.Context, d *WebhookDelivery) error
	// ClaimWebhookDeliveries leases up to limit deliveries whose lease
	// ended at or before now, oldest first, setting their LeaseUntil to
	// leaseUntil, and returns them. A delivery is claimed by one caller
	// only, also when several processes claim at once.
	ClaimWebhookDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]*WebhookDelivery, error)
	// ExtendWebhookDelivery stores the attempts made and a new lease end
	// (now or earlier releases it). ENotFound if absent.
	ExtendWebhookDelivery(ctx context.Context, id string, attempts int, leaseUntil time.Time) error
	// DeleteWebhookDelivery removes a delivery that was delivered or given
	// up. ENotFound if absent.
	DeleteWebhookDelivery(ctx context.Context, id string) error
}

// WebhookStore is an engine's webhook secrets and pending deliveries.
type WebhookStore interface {
	WebhookSecretStore
	WebhookDeliveryStore
}

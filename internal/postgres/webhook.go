package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// WebhookStore keeps webhook signing secrets and pending deliveries
// (migration 00070).
type WebhookStore struct{ db *DB }

var _ tollgate.WebhookStore = (*WebhookStore)(nil)

// Webhooks returns the webhook store.
func (db *DB) Webhooks() *WebhookStore { return &WebhookStore{db: db} }

// WebhookSecret returns the user's secret.
func (s *WebhookStore) WebhookSecret(ctx context.Context, tenantID, userID string) (*tollgate.WebhookSecret, error) {
	w := tollgate.WebhookSecret{TenantID: tenantID, UserID: userID}
	var created *time.Time
	err := s.db.pool.QueryRow(ctx,
		`SELECT secret, encrypted, created_at FROM webhook_secrets WHERE tenant_id = $1 AND user_id = $2`,
		tenantID, userID).Scan(&w.Secret, &w.Encrypted, &created)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, tollgate.Errorf(tollgate.ENotFound, "no webhook secret")
	case err != nil:
		return nil, fmt.Errorf("get webhook secret: %w", err)
	}
	w.CreatedAt = fromTime(created)
	return &w, nil
}

// EnsureWebhookSecret stores sec unless its user has one, and returns the
// stored one.
func (s *WebhookStore) EnsureWebhookSecret(ctx context.Context, sec *tollgate.WebhookSecret) (*tollgate.WebhookSecret, error) {
	if err := sec.Validate(); err != nil {
		return nil, err
	}
	if sec.CreatedAt.IsZero() {
		sec.CreatedAt = s.db.stamp()
	}
	_, err := s.db.pool.Exec(ctx,
		`INSERT INTO webhook_secrets (tenant_id, user_id, secret, encrypted, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (tenant_id, user_id) DO NOTHING`,
		sec.TenantID, sec.UserID, sec.Secret, sec.Encrypted, toTime(sec.CreatedAt))
	if err != nil {
		return nil, fmt.Errorf("ensure webhook secret: %w", err)
	}
	return s.WebhookSecret(ctx, sec.TenantID, sec.UserID)
}

// PutWebhookSecret replaces the user's secret with sec.
func (s *WebhookStore) PutWebhookSecret(ctx context.Context, sec *tollgate.WebhookSecret) error {
	if err := sec.Validate(); err != nil {
		return err
	}
	if sec.CreatedAt.IsZero() {
		sec.CreatedAt = s.db.stamp()
	}
	_, err := s.db.pool.Exec(ctx,
		`INSERT INTO webhook_secrets (tenant_id, user_id, secret, encrypted, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (tenant_id, user_id) DO UPDATE SET secret = excluded.secret,
			encrypted = excluded.encrypted, created_at = excluded.created_at`,
		sec.TenantID, sec.UserID, sec.Secret, sec.Encrypted, toTime(sec.CreatedAt))
	if err != nil {
		return fmt.Errorf("put webhook secret: %w", err)
	}
	return nil
}

const deliveryColumns = `id, tenant_id, user_id, prediction_id, event, url, body, attempts, created_at, lease_until`

// CreateWebhookDelivery stores d.
func (s *WebhookStore) CreateWebhookDelivery(ctx context.Context, d *tollgate.WebhookDelivery) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = s.db.stamp()
	}
	_, err := s.db.pool.Exec(ctx,
		`INSERT INTO webhook_deliveries (`+deliveryColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		d.ID, d.TenantID, d.UserID, d.PredictionID, d.Event, d.URL, nonNil(d.Body), d.Attempts,
		toTime(d.CreatedAt), d.LeaseUntil.UTC().Truncate(time.Microsecond))
	switch {
	case isUnique(err):
		return tollgate.Errorf(tollgate.EConflict, "webhook delivery %q already exists", d.ID)
	case err != nil:
		return fmt.Errorf("create webhook delivery: %w", err)
	}
	return nil
}

// ClaimWebhookDeliveries leases up to limit deliveries whose lease ended;
// SKIP LOCKED lets replicas claim at once without taking the same rows.
func (s *WebhookStore) ClaimWebhookDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]*tollgate.WebhookDelivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, _ := s.db.pool.Query(ctx,
		`WITH due AS (
			SELECT id FROM webhook_deliveries WHERE lease_until <= $1
			ORDER BY created_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED)
		UPDATE webhook_deliveries d SET lease_until = $2 FROM due WHERE d.id = due.id
		RETURNING d.id, d.tenant_id, d.user_id, d.prediction_id, d.event, d.url, d.body, d.attempts,
			d.created_at, d.lease_until, d.seq`,
		now.UTC(), leaseUntil.UTC().Truncate(time.Microsecond), limit)
	type claimed struct {
		d   *tollgate.WebhookDelivery
		seq int64
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (claimed, error) {
		var d tollgate.WebhookDelivery
		var created *time.Time
		var c claimed
		err := row.Scan(&d.ID, &d.TenantID, &d.UserID, &d.PredictionID, &d.Event, &d.URL, &d.Body,
			&d.Attempts, &created, &d.LeaseUntil, &c.seq)
		d.CreatedAt, d.LeaseUntil = fromTime(created), d.LeaseUntil.UTC()
		c.d = &d
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	// RETURNING keeps no order.
	slices.SortFunc(out, func(a, b claimed) int {
		if c := a.d.CreatedAt.Compare(b.d.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	ds := make([]*tollgate.WebhookDelivery, len(out))
	for i, c := range out {
		ds[i] = c.d
	}
	return ds, nil
}

// ExtendWebhookDelivery stores the attempts made and a new lease end.
func (s *WebhookStore) ExtendWebhookDelivery(ctx context.Context, id string, attempts int, leaseUntil time.Time) error {
	tag, err := s.db.pool.Exec(ctx,
		`UPDATE webhook_deliveries SET attempts = $1, lease_until = $2 WHERE id = $3`,
		attempts, leaseUntil.UTC().Truncate(time.Microsecond), id)
	if err != nil {
		return fmt.Errorf("extend webhook delivery: %w", err)
	}
	return mustAffect(tag, "webhook delivery %q not found", id)
}

// DeleteWebhookDelivery removes a delivery.
func (s *WebhookStore) DeleteWebhookDelivery(ctx context.Context, id string) error {
	tag, err := s.db.pool.Exec(ctx, `DELETE FROM webhook_deliveries WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete webhook delivery: %w", err)
	}
	return mustAffect(tag, "webhook delivery %q not found", id)
}

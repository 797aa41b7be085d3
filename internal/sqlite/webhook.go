package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

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
	return s.secret(ctx, s.db.read, tenantID, userID)
}

func (s *WebhookStore) secret(ctx context.Context, q *sql.DB, tenantID, userID string) (*tollgate.WebhookSecret, error) {
	w := tollgate.WebhookSecret{TenantID: tenantID, UserID: userID}
	var created sql.NullInt64
	err := q.QueryRowContext(ctx,
		`SELECT secret, encrypted, created_at FROM webhook_secrets WHERE tenant_id = ? AND user_id = ?`,
		tenantID, userID).Scan(&w.Secret, &w.Encrypted, &created)
	switch {
	case errors.Is(err, sql.ErrNoRows):
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
	_, err := s.db.write.ExecContext(ctx,
		`INSERT INTO webhook_secrets (tenant_id, user_id, secret, encrypted, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, user_id) DO NOTHING`,
		sec.TenantID, sec.UserID, sec.Secret, sec.Encrypted, toTime(sec.CreatedAt))
	if err != nil {
		return nil, fmt.Errorf("ensure webhook secret: %w", err)
	}
	// Read through the writer: a read connection may not see the row yet.
	return s.secret(ctx, s.db.write.DB, sec.TenantID, sec.UserID)
}

// PutWebhookSecret replaces the user's secret with sec.
func (s *WebhookStore) PutWebhookSecret(ctx context.Context, sec *tollgate.WebhookSecret) error {
	if err := sec.Validate(); err != nil {
		return err
	}
	if sec.CreatedAt.IsZero() {
		sec.CreatedAt = s.db.stamp()
	}
	_, err := s.db.write.ExecContext(ctx,
		`INSERT INTO webhook_secrets (tenant_id, user_id, secret, encrypted, created_at) VALUES (?, ?, ?, ?, ?)
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
	_, err := s.db.write.ExecContext(ctx,
		`INSERT INTO webhook_deliveries (`+deliveryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.TenantID, d.UserID, d.PredictionID, d.Event, d.URL, nonNil(d.Body), d.Attempts,
		toTime(d.CreatedAt), d.LeaseUntil.UnixMicro())
	switch {
	case isUnique(err):
		return tollgate.Errorf(tollgate.EConflict, "webhook delivery %q already exists", d.ID)
	case err != nil:
		return fmt.Errorf("create webhook delivery: %w", err)
	}
	return nil
}

// ClaimWebhookDeliveries leases up to limit deliveries whose lease ended.
// The single writer connection makes the claim atomic.
func (s *WebhookStore) ClaimWebhookDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]*tollgate.WebhookDelivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.db.write.QueryContext(ctx,
		`UPDATE webhook_deliveries SET lease_until = ?
		WHERE id IN (SELECT id FROM webhook_deliveries WHERE lease_until <= ? ORDER BY created_at, rowid LIMIT ?)
		RETURNING `+deliveryColumns,
		leaseUntil.UnixMicro(), now.UnixMicro(), limit)
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	defer rows.Close()
	var out []*tollgate.WebhookDelivery
	for rows.Next() {
		var d tollgate.WebhookDelivery
		var created sql.NullInt64
		var lease int64
		if err := rows.Scan(&d.ID, &d.TenantID, &d.UserID, &d.PredictionID, &d.Event, &d.URL, &d.Body,
			&d.Attempts, &created, &lease); err != nil {
			return nil, fmt.Errorf("claim webhook deliveries: %w", err)
		}
		d.CreatedAt, d.LeaseUntil = fromTime(created), time.UnixMicro(lease).UTC()
		out = append(out, &d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	// RETURNING keeps no order.
	slices.SortStableFunc(out, func(a, b *tollgate.WebhookDelivery) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// ExtendWebhookDelivery stores the attempts made and a new lease end.
func (s *WebhookStore) ExtendWebhookDelivery(ctx context.Context, id string, attempts int, leaseUntil time.Time) error {
	res, err := s.db.write.ExecContext(ctx,
		`UPDATE webhook_deliveries SET attempts = ?, lease_until = ? WHERE id = ?`,
		attempts, leaseUntil.UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("extend webhook delivery: %w", err)
	}
	return mustAffect(res, "webhook delivery %q not found", id)
}

// DeleteWebhookDelivery removes a delivery.
func (s *WebhookStore) DeleteWebhookDelivery(ctx context.Context, id string) error {
	res, err := s.db.write.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete webhook delivery: %w", err)
	}
	return mustAffect(res, "webhook delivery %q not found", id)
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// TenantStore keeps tenants.
type TenantStore struct{ db *DB }

var _ tollgate.TenantStore = (*TenantStore)(nil)

// CreateTenant stores t, setting ID ("ten_…") and CreatedAt when empty.
func (s *TenantStore) CreateTenant(ctx context.Context, t *tollgate.Tenant) error {
	if t.Name == "" {
		return tollgate.Errorf(tollgate.EInvalid, "tenant name is required")
	}
	if t.ID == "" {
		t.ID = newID("ten_")
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.db.stamp()
	}
	_, err := s.db.conn().Exec(ctx, `INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)`,
		t.ID, t.Name, toTime(t.CreatedAt))
	switch {
	case isUnique(err):
		return tollgate.Errorf(tollgate.EConflict, "a tenant with ID %q or name %q already exists", t.ID, t.Name)
	case err != nil:
		return fmt.Errorf("create tenant: %w", err)
	}
	return nil
}

// Tenant returns a tenant by ID or, failing that, by name.
func (s *TenantStore) Tenant(ctx context.Context, idOrName string) (*tollgate.Tenant, error) {
	rows, _ := s.db.conn().Query(ctx,
		`SELECT id, name, created_at FROM tenants WHERE id = $1 OR name = $1
		 ORDER BY id = $1 DESC LIMIT 1`, idOrName)
	t, err := pgx.CollectExactlyOneRow(rows, scanTenant)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tollgate.Errorf(tollgate.ENotFound, "tenant %q not found", idOrName)
	}
	if err != nil {
		return nil, fmt.Errorf("get tenant: %w", err)
	}
	return t, nil
}

// Tenants lists all tenants ordered by name.
func (s *TenantStore) Tenants(ctx context.Context) ([]*tollgate.Tenant, error) {
	rows, _ := s.db.conn().Query(ctx, `SELECT id, name, created_at FROM tenants ORDER BY name COLLATE "C"`)
	out, err := pgx.CollectRows(rows, scanTenant)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

func scanTenant(row pgx.CollectableRow) (*tollgate.Tenant, error) {
	var t tollgate.Tenant
	var created *time.Time
	if err := row.Scan(&t.ID, &t.Name, &created); err != nil {
		return nil, err
	}
	t.CreatedAt = fromTime(created)
	return &t, nil
}

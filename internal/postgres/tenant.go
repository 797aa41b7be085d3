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
	_, err := s.db.conn().Exec(ctx, `INSERT INTO tenants (id, name, disabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)`,
		t.ID, t.Name, t.Disabled, toTime(t.CreatedAt), toTime(t.UpdatedAt))
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
		`SELECT id, name, disabled, created_at, updated_at FROM tenants WHERE id = $1 OR name = $1
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
	rows, _ := s.db.conn().Query(ctx, `SELECT id, name, disabled, created_at, updated_at FROM tenants ORDER BY name COLLATE "C"`)
	out, err := pgx.CollectRows(rows, scanTenant)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

// UpdateTenant applies upd to the tenant with this ID and sets UpdatedAt.
func (s *TenantStore) UpdateTenant(ctx context.Context, id string, upd tollgate.TenantUpdate) (*tollgate.Tenant, error) {
	if upd.Name != nil && *upd.Name == "" {
		return nil, tollgate.Errorf(tollgate.EInvalid, "tenant name is required")
	}
	rows, _ := s.db.conn().Query(ctx,
		`UPDATE tenants SET name = COALESCE($2, name), disabled = COALESCE($3, disabled), updated_at = $4
		 WHERE id = $1 RETURNING id, name, disabled, created_at, updated_at`,
		id, upd.Name, upd.Disabled, toTime(s.db.stamp()))
	t, err := pgx.CollectExactlyOneRow(rows, scanTenant)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, tollgate.Errorf(tollgate.ENotFound, "tenant %q not found", id)
	case isUnique(err):
		return nil, tollgate.Errorf(tollgate.EConflict, "a tenant named %q already exists", *upd.Name)
	case err != nil:
		return nil, fmt.Errorf("update tenant: %w", err)
	}
	return t, nil
}

func scanTenant(row pgx.CollectableRow) (*tollgate.Tenant, error) {
	var t tollgate.Tenant
	var created, updated *time.Time
	if err := row.Scan(&t.ID, &t.Name, &t.Disabled, &created, &updated); err != nil {
		return nil, err
	}
	t.CreatedAt = fromTime(created)
	t.UpdatedAt = fromTime(updated)
	return &t, nil
}

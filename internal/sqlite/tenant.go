package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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
	_, err := s.db.writer().ExecContext(ctx,
		`INSERT INTO tenants (id, name, disabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
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
	row := s.db.reader().QueryRowContext(ctx,
		`SELECT id, name, disabled, created_at, updated_at FROM tenants WHERE id = ?1 OR name = ?1
		 ORDER BY id = ?1 DESC LIMIT 1`, idOrName)
	t, err := scanTenant(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tollgate.Errorf(tollgate.ENotFound, "tenant %q not found", idOrName)
	}
	if err != nil {
		return nil, fmt.Errorf("get tenant: %w", err)
	}
	return t, nil
}

// Tenants lists all tenants ordered by name.
func (s *TenantStore) Tenants(ctx context.Context) ([]*tollgate.Tenant, error) {
	rows, err := s.db.reader().QueryContext(ctx, `SELECT id, name, disabled, created_at, updated_at FROM tenants ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	var out []*tollgate.Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

// UpdateTenant applies upd to the tenant with this ID and sets UpdatedAt.
func (s *TenantStore) UpdateTenant(ctx context.Context, id string, upd tollgate.TenantUpdate) (*tollgate.Tenant, error) {
	if upd.Name != nil && *upd.Name == "" {
		return nil, tollgate.Errorf(tollgate.EInvalid, "tenant name is required")
	}
	var t *tollgate.Tenant
	err := s.db.withTx(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = scanTenant(tx.QueryRowContext(ctx,
			`SELECT id, name, disabled, created_at, updated_at FROM tenants WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return tollgate.Errorf(tollgate.ENotFound, "tenant %q not found", id)
		} else if err != nil {
			return fmt.Errorf("get tenant: %w", err)
		}
		t.ApplyUpdate(upd)
		t.UpdatedAt = s.db.stamp()
		_, err = tx.ExecContext(ctx, `UPDATE tenants SET name = ?, disabled = ?, updated_at = ? WHERE id = ?`,
			t.Name, t.Disabled, toTime(t.UpdatedAt), id)
		switch {
		case isUnique(err):
			return tollgate.Errorf(tollgate.EConflict, "a tenant named %q already exists", t.Name)
		case err != nil:
			return fmt.Errorf("update tenant: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

func scanTenant(sc scanner) (*tollgate.Tenant, error) {
	var t tollgate.Tenant
	var created, updated sql.NullInt64
	if err := sc.Scan(&t.ID, &t.Name, &t.Disabled, &created, &updated); err != nil {
		return nil, err
	}
	t.CreatedAt = fromTime(created)
	t.UpdatedAt = fromTime(updated)
	return &t, nil
}

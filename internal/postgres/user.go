package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// UserStore keeps users.
type UserStore struct{ db *DB }

var _ tollgate.UserStore = (*UserStore)(nil)

const userColumns = `id, name, tenant_id, role, plan, password_hash, disabled,
	tokens_valid_after, created_at, updated_at`

// CreateUser stores u, setting ID ("usr_…"), CreatedAt and UpdatedAt when
// empty. A user needs a name and an existing tenant: EInvalid without a
// name or tenant, ENotFound when the tenant does not exist.
func (s *UserStore) CreateUser(ctx context.Context, u *tollgate.User) error {
	switch {
	case u.Name == "":
		return tollgate.Errorf(tollgate.EInvalid, "user name is required")
	case u.TenantID == "":
		return tollgate.Errorf(tollgate.EInvalid, "user tenant is required")
	}
	if u.ID == "" {
		u.ID = newID("usr_")
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = s.db.stamp()
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = u.CreatedAt
	}
	_, err := s.db.conn().Exec(ctx,
		`INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		u.ID, u.Name, u.TenantID, u.Role, u.Plan, u.PasswordHash, u.Disabled,
		toTime(u.TokensValidAfter), toTime(u.CreatedAt), toTime(u.UpdatedAt))
	switch {
	case isUnique(err):
		return tollgate.Errorf(tollgate.EConflict, "user %q already exists", u.Name)
	case isForeignKey(err):
		return tollgate.Errorf(tollgate.ENotFound, "tenant %q not found", u.TenantID)
	case err != nil:
		return fmt.Errorf("create user: %w", err)
	}
	return nil
}

// User returns a user by ID.
func (s *UserStore) User(ctx context.Context, id string) (*tollgate.User, error) {
	return s.get(ctx, s.db.conn(), `WHERE id = $1`, id)
}

// UserByName returns a user by login name.
func (s *UserStore) UserByName(ctx context.Context, name string) (*tollgate.User, error) {
	return s.get(ctx, s.db.conn(), `WHERE name = $1`, name)
}

// querier is a pool, connection or transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func (s *UserStore) get(ctx context.Context, q querier, where, value string) (*tollgate.User, error) {
	rows, _ := q.Query(ctx, `SELECT `+userColumns+` FROM users `+where, value)
	u, err := pgx.CollectExactlyOneRow(rows, scanUser)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tollgate.Errorf(tollgate.ENotFound, "user %q not found", value)
	}
	if err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

// Users lists users ordered by name; tenantID "" lists all tenants.
func (s *UserStore) Users(ctx context.Context, tenantID string) ([]*tollgate.User, error) {
	rows, _ := s.db.conn().Query(ctx,
		`SELECT `+userColumns+` FROM users WHERE $1 = '' OR tenant_id = $1 ORDER BY name COLLATE "C"`, tenantID)
	out, err := pgx.CollectRows(rows, scanUser)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// UpdateUser applies upd, sets UpdatedAt and returns the new user. A
// TokensValidAfter pointing at the zero time clears it.
func (s *UserStore) UpdateUser(ctx context.Context, id string, upd tollgate.UserUpdate) (*tollgate.User, error) {
	var u *tollgate.User
	err := s.db.withTx(ctx, func(tx pgx.Tx) error {
		var err error
		if u, err = s.get(ctx, tx, `WHERE id = $1 FOR UPDATE`, id); err != nil {
			return err
		}
		applyUpdate(u, upd)
		u.UpdatedAt = s.db.stamp()
		_, err = tx.Exec(ctx,
			`UPDATE users SET role = $1, plan = $2, password_hash = $3, disabled = $4,
				tokens_valid_after = $5, updated_at = $6 WHERE id = $7`,
			u.Role, u.Plan, u.PasswordHash, u.Disabled, toTime(u.TokensValidAfter), toTime(u.UpdatedAt), id)
		if err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// DeleteUser removes a user with its API keys and refresh-token families,
// in one transaction. Its usage records stay.
func (s *UserStore) DeleteUser(ctx context.Context, id string) error {
	return s.db.withTx(ctx, func(tx pgx.Tx) error {
		if _, err := s.get(ctx, tx, `WHERE id = $1 FOR UPDATE`, id); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM api_keys WHERE user_id = $1`,
			`DELETE FROM refresh_tokens WHERE user_id = $1`,
			`DELETE FROM refresh_families WHERE user_id = $1`,
			`DELETE FROM users WHERE id = $1`,
		} {
			if _, err := tx.Exec(ctx, q, id); err != nil {
				return fmt.Errorf("delete user: %w", err)
			}
		}
		return nil
	})
}

func applyUpdate(u *tollgate.User, upd tollgate.UserUpdate) {
	if upd.Role != nil {
		u.Role = *upd.Role
	}
	if upd.Plan != nil {
		u.Plan = *upd.Plan
	}
	if upd.PasswordHash != nil {
		u.PasswordHash = *upd.PasswordHash
	}
	if upd.Disabled != nil {
		u.Disabled = *upd.Disabled
	}
	if upd.TokensValidAfter != nil {
		u.TokensValidAfter = upd.TokensValidAfter.UTC().Truncate(time.Microsecond)
	}
}

func scanUser(row pgx.CollectableRow) (*tollgate.User, error) {
	var u tollgate.User
	var tva, created, updated *time.Time
	err := row.Scan(&u.ID, &u.Name, &u.TenantID, &u.Role, &u.Plan, &u.PasswordHash,
		&u.Disabled, &tva, &created, &updated)
	if err != nil {
		return nil, err
	}
	u.TokensValidAfter = fromTime(tva)
	u.CreatedAt = fromTime(created)
	u.UpdatedAt = fromTime(updated)
	return &u, nil
}

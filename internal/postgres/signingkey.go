package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// SigningKeyStore keeps the gateway's signing keys.
type SigningKeyStore struct{ db *DB }

var _ tollgate.SigningKeyStore = (*SigningKeyStore)(nil)

const signingKeyColumns = `id, algorithm, purpose, private_key, encrypted, public_key, state,
	created_at, activate_at, retired_at, remove_after`

// CreateSigningKey stores k, setting ID ("kid_…") and CreatedAt when empty.
func (s *SigningKeyStore) CreateSigningKey(ctx context.Context, k *tollgate.SigningKey) error {
	if k.ID == "" {
		k.ID = newID("kid_")
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.db.stamp()
	}
	_, err := s.db.pool.Exec(ctx,
		`INSERT INTO signing_keys (`+signingKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		k.ID, k.Algorithm, k.Purpose, nonNil(k.PrivateKey), k.Encrypted, nonNil(k.PublicKey), k.State,
		toTime(k.CreatedAt), toTime(k.ActivateAt), toTime(k.RetiredAt), toTime(k.RemoveAfter))
	switch {
	case isUnique(err):
		return tollgate.Errorf(tollgate.EConflict, "signing key %q already exists", k.ID)
	case err != nil:
		return fmt.Errorf("create signing key: %w", err)
	}
	return nil
}

// SigningKeys lists the stored keys of a purpose, oldest first.
func (s *SigningKeyStore) SigningKeys(ctx context.Context, purpose string) ([]*tollgate.SigningKey, error) {
	rows, _ := s.db.pool.Query(ctx,
		`SELECT `+signingKeyColumns+` FROM signing_keys WHERE purpose = $1 ORDER BY created_at, seq`, purpose)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*tollgate.SigningKey, error) {
		var k tollgate.SigningKey
		var created, activate, retired, remove *time.Time
		err := row.Scan(&k.ID, &k.Algorithm, &k.Purpose, &k.PrivateKey, &k.Encrypted, &k.PublicKey,
			&k.State, &created, &activate, &retired, &remove)
		k.CreatedAt, k.ActivateAt = fromTime(created), fromTime(activate)
		k.RetiredAt, k.RemoveAfter = fromTime(retired), fromTime(remove)
		return &k, err
	})
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	return out, nil
}

// UpdateSigningKey stores k's State, ActivateAt, RetiredAt and RemoveAfter.
func (s *SigningKeyStore) UpdateSigningKey(ctx context.Context, k *tollgate.SigningKey) error {
	tag, err := s.db.pool.Exec(ctx,
		`UPDATE signing_keys SET state = $1, activate_at = $2, retired_at = $3, remove_after = $4 WHERE id = $5`,
		k.State, toTime(k.ActivateAt), toTime(k.RetiredAt), toTime(k.RemoveAfter), k.ID)
	if err != nil {
		return fmt.Errorf("update signing key: %w", err)
	}
	return mustAffect(tag, "signing key %q not found", k.ID)
}

// DeleteSigningKey removes a key.
func (s *SigningKeyStore) DeleteSigningKey(ctx context.Context, id string) error {
	tag, err := s.db.pool.Exec(ctx, `DELETE FROM signing_keys WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete signing key: %w", err)
	}
	return mustAffect(tag, "signing key %q not found", id)
}

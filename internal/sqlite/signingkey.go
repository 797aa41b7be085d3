package sqlite

import (
	"context"
	"database/sql"
	"fmt"

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
	_, err := s.db.write.ExecContext(ctx,
		`INSERT INTO signing_keys (`+signingKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
	rows, err := s.db.read.QueryContext(ctx,
		`SELECT `+signingKeyColumns+` FROM signing_keys WHERE purpose = ? ORDER BY created_at, rowid`, purpose)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	defer rows.Close()
	var out []*tollgate.SigningKey
	for rows.Next() {
		var k tollgate.SigningKey
		var created, activate, retired, remove sql.NullInt64
		err := rows.Scan(&k.ID, &k.Algorithm, &k.Purpose, &k.PrivateKey, &k.Encrypted, &k.PublicKey,
			&k.State, &created, &activate, &retired, &remove)
		if err != nil {
			return nil, fmt.Errorf("list signing keys: %w", err)
		}
		k.CreatedAt, k.ActivateAt = fromTime(created), fromTime(activate)
		k.RetiredAt, k.RemoveAfter = fromTime(retired), fromTime(remove)
		out = append(out, &k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	return out, nil
}

// UpdateSigningKey stores k's State, ActivateAt, RetiredAt and RemoveAfter.
func (s *SigningKeyStore) UpdateSigningKey(ctx context.Context, k *tollgate.SigningKey) error {
	res, err := s.db.write.ExecContext(ctx,
		`UPDATE signing_keys SET state = ?, activate_at = ?, retired_at = ?, remove_after = ? WHERE id = ?`,
		k.State, toTime(k.ActivateAt), toTime(k.RetiredAt), toTime(k.RemoveAfter), k.ID)
	if err != nil {
		return fmt.Errorf("update signing key: %w", err)
	}
	return mustAffect(res, "signing key %q not found", k.ID)
}

// DeleteSigningKey removes a key.
func (s *SigningKeyStore) DeleteSigningKey(ctx context.Context, id string) error {
	res, err := s.db.write.ExecContext(ctx, `DELETE FROM signing_keys WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete signing key: %w", err)
	}
	return mustAffect(res, "signing key %q not found", id)
}

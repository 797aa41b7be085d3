package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// APIKeyStore keeps API keys.
type APIKeyStore struct{ db *DB }

var _ tollgate.APIKeyStore = (*APIKeyStore)(nil)

const apiKeyColumns = `id, user_id, name, hash, created_at, last_used_at, revoked`

// CreateAPIKey stores k, setting ID ("key_…") and CreatedAt when empty.
func (s *APIKeyStore) CreateAPIKey(ctx context.Context, k *tollgate.APIKey) error {
	if k.ID == "" {
		k.ID = newID("key_")
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.db.stamp()
	}
	_, err := s.db.conn().Exec(ctx,
		`INSERT INTO api_keys (`+apiKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		k.ID, k.UserID, k.Name, nonNil(k.Hash), toTime(k.CreatedAt), toTime(k.LastUsedAt), k.Revoked)
	switch {
	case isUnique(err):
		return tollgate.Errorf(tollgate.EConflict, "API key %q already exists", k.ID)
	case isForeignKey(err):
		return tollgate.Errorf(tollgate.ENotFound, "user %q not found", k.UserID)
	case err != nil:
		return fmt.Errorf("create api key: %w", err)
	}
	return nil
}

// APIKey returns a key by ID, revoked ones included.
func (s *APIKeyStore) APIKey(ctx context.Context, id string) (*tollgate.APIKey, error) {
	rows, _ := s.db.conn().Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = $1`, id)
	k, err := pgx.CollectExactlyOneRow(rows, scanAPIKey)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tollgate.Errorf(tollgate.ENotFound, "API key %q not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("get api key: %w", err)
	}
	return k, nil
}

// APIKeys lists a user's keys, newest first.
func (s *APIKeyStore) APIKeys(ctx context.Context, userID string) ([]*tollgate.APIKey, error) {
	rows, _ := s.db.conn().Query(ctx,
		`SELECT `+apiKeyColumns+` FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, seq DESC`, userID)
	out, err := pgx.CollectRows(rows, scanAPIKey)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return out, nil
}

// RevokeAPIKey marks a key revoked; revoking twice is not an error.
func (s *APIKeyStore) RevokeAPIKey(ctx context.Context, id string) error {
	tag, err := s.db.conn().Exec(ctx, `UPDATE api_keys SET revoked = true WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("revoke api key: %w", err)
	}
	return mustAffect(tag, "API key %q not found", id)
}

// TouchAPIKey records a use of the key at t. LastUsedAt only moves forward,
// so touches that arrive out of order keep the latest. ENotFound if absent.
func (s *APIKeyStore) TouchAPIKey(ctx context.Context, id string, t time.Time) error {
	if t.IsZero() {
		t = s.db.now()
	}
	tag, err := s.db.conn().Exec(ctx,
		`UPDATE api_keys SET last_used_at = GREATEST(last_used_at, $1) WHERE id = $2`, toTime(t), id)
	if err != nil {
		return fmt.Errorf("touch api key: %w", err)
	}
	return mustAffect(tag, "API key %q not found", id)
}

func scanAPIKey(row pgx.CollectableRow) (*tollgate.APIKey, error) {
	var k tollgate.APIKey
	var created, used *time.Time
	if err := row.Scan(&k.ID, &k.UserID, &k.Name, &k.Hash, &created, &used, &k.Revoked); err != nil {
		return nil, err
	}
	k.CreatedAt = fromTime(created)
	k.LastUsedAt = fromTime(used)
	return &k, nil
}

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

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
	_, err := s.db.writer().ExecContext(ctx,
		`INSERT INTO api_keys (`+apiKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
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
	row := s.db.reader().QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ?`, id)
	k, err := scanAPIKey(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tollgate.Errorf(tollgate.ENotFound, "API key %q not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("get api key: %w", err)
	}
	return k, nil
}

// APIKeys lists a user's keys, newest first.
func (s *APIKeyStore) APIKeys(ctx context.Context, userID string) ([]*tollgate.APIKey, error) {
	rows, err := s.db.reader().QueryContext(ctx,
		`SELECT `+apiKeyColumns+` FROM api_keys WHERE user_id = ? ORDER BY created_at DESC, rowid DESC`, userID)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	var out []*tollgate.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list api keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return out, nil
}

// RevokeAPIKey marks a key revoked; revoking twice is not an error.
func (s *APIKeyStore) RevokeAPIKey(ctx context.Context, id string) error {
	res, err := s.db.writer().ExecContext(ctx, `UPDATE api_keys SET revoked = 1 WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("revoke api key: %w", err)
	}
	return mustAffect(res, "API key %q not found", id)
}

// TouchAPIKey records a use of the key at t. LastUsedAt only moves forward,
// so touches that arrive out of order keep the latest. ENotFound if absent.
func (s *APIKeyStore) TouchAPIKey(ctx context.Context, id string, t time.Time) error {
	if t.IsZero() {
		t = s.db.now()
	}
	res, err := s.db.writer().ExecContext(ctx,
		`UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, ?1), ?1) WHERE id = ?2`,
		t.UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("touch api key: %w", err)
	}
	return mustAffect(res, "API key %q not found", id)
}

func scanAPIKey(sc scanner) (*tollgate.APIKey, error) {
	var k tollgate.APIKey
	var created, used sql.NullInt64
	if err := sc.Scan(&k.ID, &k.UserID, &k.Name, &k.Hash, &created, &used, &k.Revoked); err != nil {
		return nil, err
	}
	k.CreatedAt = fromTime(created)
	k.LastUsedAt = fromTime(used)
	return &k, nil
}

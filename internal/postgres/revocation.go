package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// RevocationStore keeps the access-token denylist.
type RevocationStore struct{ db *DB }

var _ tollgate.RevocationStore = (*RevocationStore)(nil)

// Revoke stores r, setting CreatedAt when empty. Revoking an entry again
// keeps the later of the two expiries.
func (s *RevocationStore) Revoke(ctx context.Context, r *tollgate.Revocation) error {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.db.stamp()
	}
	_, err := s.db.conn().Exec(ctx,
		`INSERT INTO revocations (issuer, jti, expires_at, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (issuer, jti) DO UPDATE SET expires_at = GREATEST(revocations.expires_at, excluded.expires_at)`,
		r.Issuer, r.JTI, r.ExpiresAt.UTC().Truncate(time.Microsecond), toTime(r.CreatedAt))
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// Revoked reports whether (issuer, jti) is on the denylist.
func (s *RevocationStore) Revoked(ctx context.Context, issuer, jti string) (bool, error) {
	var found bool
	err := s.db.conn().QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM revocations WHERE issuer = $1 AND jti = $2)`, issuer, jti).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("check revocation: %w", err)
	}
	return found, nil
}

// Revocations lists the entries that expire after t, soonest expiry first.
func (s *RevocationStore) Revocations(ctx context.Context, after time.Time) ([]*tollgate.Revocation, error) {
	rows, _ := s.db.conn().Query(ctx,
		`SELECT issuer, jti, expires_at, created_at FROM revocations WHERE expires_at > $1
		ORDER BY expires_at, issuer COLLATE "C", jti COLLATE "C"`, after)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*tollgate.Revocation, error) {
		var r tollgate.Revocation
		var expires, created *time.Time
		err := row.Scan(&r.Issuer, &r.JTI, &expires, &created)
		r.ExpiresAt, r.CreatedAt = fromTime(expires), fromTime(created)
		return &r, err
	})
	if err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	return out, nil
}

// DeleteExpiredRevocations removes entries that expired before t.
func (s *RevocationStore) DeleteExpiredRevocations(ctx context.Context, t time.Time) (int, error) {
	tag, err := s.db.conn().Exec(ctx, `DELETE FROM revocations WHERE expires_at < $1`, t)
	if err != nil {
		return 0, fmt.Errorf("delete expired revocations: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

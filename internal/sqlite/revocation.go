package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

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
	_, err := s.db.writer().ExecContext(ctx,
		`INSERT INTO revocations (issuer, jti, expires_at, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (issuer, jti) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)`,
		r.Issuer, r.JTI, r.ExpiresAt.UnixMicro(), toTime(r.CreatedAt))
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// Revoked reports whether (issuer, jti) is on the denylist.
func (s *RevocationStore) Revoked(ctx context.Context, issuer, jti string) (bool, error) {
	var found bool
	err := s.db.reader().QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM revocations WHERE issuer = ? AND jti = ?)`, issuer, jti).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("check revocation: %w", err)
	}
	return found, nil
}

// Revocations lists the entries that expire after t, soonest expiry first.
func (s *RevocationStore) Revocations(ctx context.Context, after time.Time) ([]*tollgate.Revocation, error) {
	rows, err := s.db.reader().QueryContext(ctx,
		`SELECT issuer, jti, expires_at, created_at FROM revocations WHERE expires_at > ?
		ORDER BY expires_at, issuer, jti`, after.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	defer rows.Close()
	var out []*tollgate.Revocation
	for rows.Next() {
		var r tollgate.Revocation
		var expires, created sql.NullInt64
		if err := rows.Scan(&r.Issuer, &r.JTI, &expires, &created); err != nil {
			return nil, fmt.Errorf("list revocations: %w", err)
		}
		r.ExpiresAt, r.CreatedAt = fromTime(expires), fromTime(created)
		out = append(out, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	return out, nil
}

// DeleteExpiredRevocations removes entries that expired before t.
func (s *RevocationStore) DeleteExpiredRevocations(ctx context.Context, t time.Time) (int, error) {
	res, err := s.db.writer().ExecContext(ctx, `DELETE FROM revocations WHERE expires_at < ?`, t.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("delete expired revocations: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete expired revocations: %w", err)
	}
	return int(n), nil
}

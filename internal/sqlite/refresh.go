package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// RefreshTokenStore keeps refresh-token families. A family is a row of
// refresh_families holding the absolute expiry and the revoked flag, so
// revoking a family also covers tokens created into it afterwards.
type RefreshTokenStore struct{ db *DB }

var _ tollgate.RefreshTokenStore = (*RefreshTokenStore)(nil)

const refreshSelect = `SELECT t.hash, t.family_id, t.user_id, t.scopes, t.issued_at, t.expires_at,
	f.expires_at, t.used_at, f.revoked
	FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id`

// CreateRefreshToken stores t, creating its family on first use. FamilyID
// ("fam_…") and IssuedAt are set when empty. A family's absolute expiry is
// the earliest FamilyExpiresAt of its tokens (zero: none), and a token
// created into a revoked family is revoked too.
func (s *RefreshTokenStore) CreateRefreshToken(ctx context.Context, t *tollgate.RefreshToken) error {
	if t.FamilyID == "" {
		t.FamilyID = newID("fam_")
	}
	if t.IssuedAt.IsZero() {
		t.IssuedAt = s.db.stamp()
	}
	return s.db.withTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO refresh_families (id, user_id, expires_at, revoked, created_at)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET
				revoked = revoked OR excluded.revoked,
				expires_at = CASE
					WHEN excluded.expires_at IS NULL THEN expires_at
					WHEN expires_at IS NULL THEN excluded.expires_at
					ELSE min(expires_at, excluded.expires_at) END`,
			t.FamilyID, t.UserID, toTime(t.FamilyExpiresAt), t.Revoked, toTime(t.IssuedAt))
		if err != nil {
			return fmt.Errorf("create refresh family: %w", err)
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO refresh_tokens (hash, family_id, user_id, scopes, issued_at, expires_at, used_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			nonNil(t.Hash), t.FamilyID, t.UserID, strings.Join(t.Scopes, " "),
			toTime(t.IssuedAt), toTime(t.ExpiresAt), toTime(t.UsedAt))
		switch {
		case isUnique(err):
			return tollgate.Errorf(tollgate.EConflict, "refresh token already exists")
		case err != nil:
			return fmt.Errorf("create refresh token: %w", err)
		}
		return nil
	})
}

// ConsumeRefreshToken marks the token used at now and returns it; see
// tollgate.RefreshTokenStore. A reused token is reported as
// tollgate.ErrRefreshReused before any other check, and its family is
// revoked in the same transaction.
func (s *RefreshTokenStore) ConsumeRefreshToken(ctx context.Context, hash []byte, now time.Time) (*tollgate.RefreshToken, error) {
	now = now.UTC().Truncate(time.Microsecond)
	var tok *tollgate.RefreshToken
	err := s.db.withTx(ctx, func(tx *sql.Tx) error {
		var err error
		tok, err = scanRefresh(tx.QueryRowContext(ctx, refreshSelect+` WHERE t.hash = ?`, nonNil(hash)))
		if errors.Is(err, sql.ErrNoRows) {
			return tollgate.Errorf(tollgate.EUnauthorized, "invalid refresh token")
		}
		if err != nil {
			return fmt.Errorf("consume refresh token: %w", err)
		}
		if refused := checkRefresh(tok, now); refused != nil {
			if refused == tollgate.ErrRefreshReused && !tok.Revoked {
				_, err := tx.ExecContext(ctx, `UPDATE refresh_families SET revoked = 1 WHERE id = ?`, tok.FamilyID)
				if err != nil {
					return fmt.Errorf("revoke refresh family: %w", err)
				}
				tok.Revoked = true
			}
			return &commitErr{refused}
		}
		_, err = tx.ExecContext(ctx, `UPDATE refresh_tokens SET used_at = ? WHERE hash = ?`, toTime(now), tok.Hash)
		if err != nil {
			return fmt.Errorf("consume refresh token: %w", err)
		}
		tok.UsedAt = now
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tok, nil
}

// checkRefresh returns why tok cannot be consumed at now, or nil.
func checkRefresh(tok *tollgate.RefreshToken, now time.Time) error {
	expired := func(at time.Time) bool { return !at.IsZero() && !now.Before(at) }
	switch {
	case !tok.UsedAt.IsZero():
		return tollgate.ErrRefreshReused
	case tok.Revoked:
		return tollgate.Errorf(tollgate.EUnauthorized, "refresh token revoked")
	case expired(tok.ExpiresAt), expired(tok.FamilyExpiresAt):
		return tollgate.Errorf(tollgate.EUnauthorized, "refresh token expired")
	}
	return nil
}

// RefreshToken returns a token by hash without consuming it.
func (s *RefreshTokenStore) RefreshToken(ctx context.Context, hash []byte) (*tollgate.RefreshToken, error) {
	tok, err := scanRefresh(s.db.reader().QueryRowContext(ctx, refreshSelect+` WHERE t.hash = ?`, nonNil(hash)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tollgate.Errorf(tollgate.ENotFound, "refresh token not found")
	}
	if err != nil {
		return nil, fmt.Errorf("get refresh token: %w", err)
	}
	return tok, nil
}

// RevokeRefreshFamily revokes every token of a family, present and future.
func (s *RefreshTokenStore) RevokeRefreshFamily(ctx context.Context, familyID string) error {
	res, err := s.db.writer().ExecContext(ctx, `UPDATE refresh_families SET revoked = 1 WHERE id = ?`, familyID)
	if err != nil {
		return fmt.Errorf("revoke refresh family: %w", err)
	}
	return mustAffect(res, "refresh token family %q not found", familyID)
}

// RevokeUserRefreshTokens revokes every family of a user.
func (s *RefreshTokenStore) RevokeUserRefreshTokens(ctx context.Context, userID string) error {
	_, err := s.db.writer().ExecContext(ctx, `UPDATE refresh_families SET revoked = 1 WHERE user_id = ?`, userID)
	if err != nil {
		return fmt.Errorf("revoke user refresh tokens: %w", err)
	}
	return nil
}

// Sessions lists the user's live families, newest login first.
func (s *RefreshTokenStore) Sessions(ctx context.Context, userID string, now time.Time) ([]*tollgate.Session, error) {
	at := now.UnixMicro()
	rows, err := s.db.reader().QueryContext(ctx,
		`SELECT f.id, f.user_id, f.created_at, f.expires_at, max(t.issued_at)
		FROM refresh_families f JOIN refresh_tokens t ON t.family_id = f.id
		WHERE f.user_id = ? AND f.revoked = 0 AND (f.expires_at IS NULL OR f.expires_at > ?)
		GROUP BY f.id
		HAVING sum(t.used_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?)) > 0
		ORDER BY f.created_at DESC, f.id`, userID, at, at)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	var out []*tollgate.Session
	for rows.Next() {
		var ss tollgate.Session
		var created, expires, last sql.NullInt64
		if err := rows.Scan(&ss.FamilyID, &ss.UserID, &created, &expires, &last); err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		ss.CreatedAt, ss.ExpiresAt, ss.LastUsed = fromTime(created), fromTime(expires), fromTime(last)
		out = append(out, &ss)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// DeleteExpiredRefreshTokens removes the families whose absolute expiry is
// before t, with their tokens, and returns how many tokens it removed.
func (s *RefreshTokenStore) DeleteExpiredRefreshTokens(ctx context.Context, t time.Time) (int, error) {
	var n int64
	err := s.db.withTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`DELETE FROM refresh_tokens WHERE family_id IN
				(SELECT id FROM refresh_families WHERE expires_at < ?)`, t.UnixMicro())
		if err != nil {
			return fmt.Errorf("delete expired refresh tokens: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("delete expired refresh tokens: %w", err)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM refresh_families WHERE expires_at < ?`, t.UnixMicro())
		if err != nil {
			return fmt.Errorf("delete expired refresh families: %w", err)
		}
		return nil
	})
	return int(n), err
}

func scanRefresh(sc scanner) (*tollgate.RefreshToken, error) {
	var t tollgate.RefreshToken
	var scopes string
	var issued, expires, famExpires, used sql.NullInt64
	err := sc.Scan(&t.Hash, &t.FamilyID, &t.UserID, &scopes, &issued, &expires, &famExpires, &used, &t.Revoked)
	if err != nil {
		return nil, err
	}
	t.Scopes = splitScopes(scopes)
	t.IssuedAt, t.ExpiresAt = fromTime(issued), fromTime(expires)
	t.FamilyExpiresAt, t.UsedAt = fromTime(famExpires), fromTime(used)
	return &t, nil
}

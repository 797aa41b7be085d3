package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// RefreshTokenStore keeps refresh-token families. A family is a row of
// refresh_families holding the absolute expiry and the revoked flag, so
// revoking a family also covers tokens created into it afterwards, and the
// family row serialises rotation against revocation.
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
	scopes := t.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return s.db.withTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx,
			`INSERT INTO refresh_families (id, user_id, expires_at, revoked, created_at)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (id) DO UPDATE SET
				revoked = refresh_families.revoked OR excluded.revoked,
				expires_at = LEAST(refresh_families.expires_at, excluded.expires_at)`,
			t.FamilyID, t.UserID, toTime(t.FamilyExpiresAt), t.Revoked, toTime(t.IssuedAt))
		if err != nil {
			return fmt.Errorf("create refresh family: %w", err)
		}
		_, err = tx.Exec(ctx,
			`INSERT INTO refresh_tokens (hash, family_id, user_id, scopes, issued_at, expires_at, used_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			nonNil(t.Hash), t.FamilyID, t.UserID, scopes, toTime(t.IssuedAt), toTime(t.ExpiresAt), toTime(t.UsedAt))
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
// tollgate.RefreshTokenStore. The token row is locked for the transaction,
// so of concurrent consumers exactly one wins and the others see it used.
// A reused token is reported as tollgate.ErrRefreshReused before any other
// check, and its family is revoked in the same transaction.
func (s *RefreshTokenStore) ConsumeRefreshToken(ctx context.Context, hash []byte, now time.Time) (*tollgate.RefreshToken, error) {
	now = now.UTC().Truncate(time.Microsecond)
	var tok *tollgate.RefreshToken
	err := s.db.withTx(ctx, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, refreshSelect+` WHERE t.hash = $1 FOR UPDATE OF t`, nonNil(hash))
		var err error
		tok, err = pgx.CollectExactlyOneRow(rows, scanRefresh)
		if errors.Is(err, pgx.ErrNoRows) {
			return tollgate.Errorf(tollgate.EUnauthorized, "invalid refresh token")
		}
		if err != nil {
			return fmt.Errorf("consume refresh token: %w", err)
		}
		if refused := checkRefresh(tok, now); refused != nil {
			if refused == tollgate.ErrRefreshReused && !tok.Revoked {
				_, err := tx.Exec(ctx, `UPDATE refresh_families SET revoked = true WHERE id = $1`, tok.FamilyID)
				if err != nil {
					return fmt.Errorf("revoke refresh family: %w", err)
				}
				tok.Revoked = true
			}
			return &commitErr{refused}
		}
		_, err = tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2`, toTime(now), tok.Hash)
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
	rows, _ := s.db.conn().Query(ctx, refreshSelect+` WHERE t.hash = $1`, nonNil(hash))
	tok, err := pgx.CollectExactlyOneRow(rows, scanRefresh)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tollgate.Errorf(tollgate.ENotFound, "refresh token not found")
	}
	if err != nil {
		return nil, fmt.Errorf("get refresh token: %w", err)
	}
	return tok, nil
}

// RevokeRefreshFamily revokes every token of a family, present and future.
func (s *RefreshTokenStore) RevokeRefreshFamily(ctx context.Context, familyID string) error {
	tag, err := s.db.conn().Exec(ctx, `UPDATE refresh_families SET revoked = true WHERE id = $1`, familyID)
	if err != nil {
		return fmt.Errorf("revoke refresh family: %w", err)
	}
	return mustAffect(tag, "refresh token family %q not found", familyID)
}

// RevokeUserRefreshTokens revokes every family of a user.
func (s *RefreshTokenStore) RevokeUserRefreshTokens(ctx context.Context, userID string) error {
	_, err := s.db.conn().Exec(ctx, `UPDATE refresh_families SET revoked = true WHERE user_id = $1`, userID)
	if err != nil {
		return fmt.Errorf("revoke user refresh tokens: %w", err)
	}
	return nil
}

// Sessions lists the user's live families, newest login first.
func (s *RefreshTokenStore) Sessions(ctx context.Context, userID string, now time.Time) ([]*tollgate.Session, error) {
	rows, _ := s.db.conn().Query(ctx,
		`SELECT f.id, f.user_id, f.created_at, f.expires_at, max(t.issued_at)
		FROM refresh_families f JOIN refresh_tokens t ON t.family_id = f.id
		WHERE f.user_id = $1 AND NOT f.revoked AND (f.expires_at IS NULL OR f.expires_at > $2)
		GROUP BY f.id
		HAVING bool_or(t.used_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2))
		ORDER BY f.created_at DESC, f.id`, userID, now)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*tollgate.Session, error) {
		var ss tollgate.Session
		var created, expires, last *time.Time
		if err := row.Scan(&ss.FamilyID, &ss.UserID, &created, &expires, &last); err != nil {
			return nil, err
		}
		ss.CreatedAt, ss.ExpiresAt, ss.LastUsed = fromTime(created), fromTime(expires), fromTime(last)
		return &ss, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// DeleteExpiredRefreshTokens removes the families whose absolute expiry is
// before t, with their tokens, and returns how many tokens it removed.
func (s *RefreshTokenStore) DeleteExpiredRefreshTokens(ctx context.Context, t time.Time) (int, error) {
	var n int64
	err := s.db.withTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx,
			`DELETE FROM refresh_tokens WHERE family_id IN
				(SELECT id FROM refresh_families WHERE expires_at < $1)`, t)
		if err != nil {
			return fmt.Errorf("delete expired refresh tokens: %w", err)
		}
		n = tag.RowsAffected()
		if _, err := tx.Exec(ctx, `DELETE FROM refresh_families WHERE expires_at < $1`, t); err != nil {
			return fmt.Errorf("delete expired refresh families: %w", err)
		}
		return nil
	})
	return int(n), err
}

func scanRefresh(row pgx.CollectableRow) (*tollgate.RefreshToken, error) {
	var t tollgate.RefreshToken
	var issued, expires, famExpires, used *time.Time
	err := row.Scan(&t.Hash, &t.FamilyID, &t.UserID, &t.Scopes, &issued, &expires, &famExpires, &used, &t.Revoked)
	if err != nil {
		return nil, err
	}
	if len(t.Scopes) == 0 {
		t.Scopes = nil
	}
	t.IssuedAt, t.ExpiresAt = fromTime(issued), fromTime(expires)
	t.FamilyExpiresAt, t.UsedAt = fromTime(famExpires), fromTime(used)
	return &t, nil
}

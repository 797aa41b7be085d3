package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// BanStore keeps IP bans (migration 00020).
type BanStore struct{ db *DB }

var _ tollgate.BanStore = (*BanStore)(nil)

// Bans returns the ban store.
func (db *DB) Bans() *BanStore { return &BanStore{db: db} }

// PutBan stores b, replacing a ban of the same IP.
func (s *BanStore) PutBan(ctx context.Context, b *tollgate.Ban) error {
	if b.CreatedAt.IsZero() {
		b.CreatedAt = s.db.stamp()
	}
	_, err := s.db.conn().Exec(ctx,
		`INSERT INTO bans (ip, reason, until, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (ip) DO UPDATE SET reason = excluded.reason, until = excluded.until, created_at = excluded.created_at`,
		b.IP, b.Reason, b.Until.UTC().Truncate(time.Microsecond), b.CreatedAt.UTC().Truncate(time.Microsecond))
	if err != nil {
		return fmt.Errorf("put ban: %w", err)
	}
	return nil
}

// DeleteBan lifts the ban of ip. ENotFound if there is none.
func (s *BanStore) DeleteBan(ctx context.Context, ip string) error {
	tag, err := s.db.conn().Exec(ctx, `DELETE FROM bans WHERE ip = $1`, ip)
	if err != nil {
		return fmt.Errorf("delete ban: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return tollgate.Errorf(tollgate.ENotFound, "no ban for %s", ip)
	}
	return nil
}

// Bans lists the bans that end after now, ordered by IP.
func (s *BanStore) Bans(ctx context.Context, now time.Time) ([]*tollgate.Ban, error) {
	rows, _ := s.db.conn().Query(ctx,
		`SELECT ip, reason, until, created_at FROM bans WHERE until > $1 ORDER BY ip COLLATE "C"`, now)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*tollgate.Ban, error) {
		var b tollgate.Ban
		err := row.Scan(&b.IP, &b.Reason, &b.Until, &b.CreatedAt)
		b.Until, b.CreatedAt = b.Until.UTC(), b.CreatedAt.UTC()
		return &b, err
	})
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	return out, nil
}

// DeleteExpiredBans removes bans that ended before t and returns how many.
func (s *BanStore) DeleteExpiredBans(ctx context.Context, t time.Time) (int, error) {
	tag, err := s.db.conn().Exec(ctx, `DELETE FROM bans WHERE until <= $1`, t)
	if err != nil {
		return 0, fmt.Errorf("delete expired bans: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

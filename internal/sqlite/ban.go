package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

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
	_, err := s.db.writer().ExecContext(ctx,
		`INSERT INTO bans (ip, reason, until, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (ip) DO UPDATE SET reason = excluded.reason, until = excluded.until, created_at = excluded.created_at`,
		b.IP, b.Reason, b.Until.UnixMicro(), b.CreatedAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("put ban: %w", err)
	}
	return nil
}

// DeleteBan lifts the ban of ip. ENotFound if there is none.
func (s *BanStore) DeleteBan(ctx context.Context, ip string) error {
	res, err := s.db.writer().ExecContext(ctx, `DELETE FROM bans WHERE ip = ?`, ip)
	if err != nil {
		return fmt.Errorf("delete ban: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return tollgate.Errorf(tollgate.ENotFound, "no ban for %s", ip)
	}
	return nil
}

// Bans lists the bans that end after now, ordered by IP.
func (s *BanStore) Bans(ctx context.Context, now time.Time) ([]*tollgate.Ban, error) {
	rows, err := s.db.reader().QueryContext(ctx,
		`SELECT ip, reason, until, created_at FROM bans WHERE until > ? ORDER BY ip`, now.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	defer rows.Close()
	var out []*tollgate.Ban
	for rows.Next() {
		var b tollgate.Ban
		var until, created sql.NullInt64
		if err := rows.Scan(&b.IP, &b.Reason, &until, &created); err != nil {
			return nil, fmt.Errorf("list bans: %w", err)
		}
		b.Until, b.CreatedAt = fromTime(until), fromTime(created)
		out = append(out, &b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	return out, nil
}

// DeleteExpiredBans removes bans that ended before t and returns how many.
func (s *BanStore) DeleteExpiredBans(ctx context.Context, t time.Time) (int, error) {
	res, err := s.db.writer().ExecContext(ctx, `DELETE FROM bans WHERE until <= ?`, t.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("delete expired bans: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// AddUpload records an uploaded input file until it expires.
func (s *JobStore) AddUpload(ctx context.Context, u *tollgate.Upload) error {
	if u.ID == "" || u.UserID == "" || u.ExpiresAt.IsZero() {
		return tollgate.Errorf(tollgate.EInvalid, "an upload needs an id, an owner and an expiry")
	}
	_, err := s.db.write.ExecContext(ctx, `INSERT INTO job_uploads (id, tenant_id, user_id, expires_at) VALUES (?, ?, ?, ?)`,
		u.ID, u.TenantID, u.UserID, u.ExpiresAt.UnixMicro())
	if isUnique(err) {
		return tollgate.Errorf(tollgate.EConflict, "upload %s exists", u.ID)
	} else if err != nil {
		return fmt.Errorf("record upload: %w", storeErr(err))
	}
	return nil
}

// ExpiredUploads returns uploads that expired at or before before.
func (s *JobStore) ExpiredUploads(ctx context.Context, before time.Time, limit int) ([]*tollgate.Upload, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT id, tenant_id, user_id, expires_at FROM job_uploads
		WHERE expires_at <= ? ORDER BY expires_at LIMIT ?`, before.UnixMicro(), limit)
	if err != nil {
		return nil, fmt.Errorf("expired uploads: %w", err)
	}
	defer rows.Close()
	var out []*tollgate.Upload
	for rows.Next() {
		var u tollgate.Upload
		var at int64
		if err := rows.Scan(&u.ID, &u.TenantID, &u.UserID, &at); err != nil {
			return nil, fmt.Errorf("expired uploads: %w", err)
		}
		u.ExpiresAt = time.UnixMicro(at).UTC()
		out = append(out, &u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("expired uploads: %w", err)
	}
	return out, nil
}

// RemoveUpload forgets an upload.
func (s *JobStore) RemoveUpload(ctx context.Context, id string) error {
	if _, err := s.db.write.ExecContext(ctx, `DELETE FROM job_uploads WHERE id = ?`, id); err != nil {
		return fmt.Errorf("remove upload: %w", storeErr(err))
	}
	return nil
}

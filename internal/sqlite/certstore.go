package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// CertStore keeps TLS material and its locks (migration 00080).
type CertStore struct{ db *DB }

var _ tollgate.CertStore = (*CertStore)(nil)

// Certs returns the TLS material store.
func (db *DB) Certs() *CertStore { return &CertStore{db: db} }

// PutCert stores value under key.
func (s *CertStore) PutCert(ctx context.Context, key string, value []byte, now time.Time) error {
	if key == "" {
		return tollgate.Errorf(tollgate.EInvalid, "empty key")
	}
	_, err := s.db.write.ExecContext(ctx,
		`INSERT INTO cert_data (key, value, modified) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, modified = excluded.modified`,
		key, value, now.UnixMicro())
	if err != nil {
		return fmt.Errorf("put cert data: %w", err)
	}
	return nil
}

// Cert returns the value under key. ENotFound.
func (s *CertStore) Cert(ctx context.Context, key string) ([]byte, time.Time, error) {
	var value []byte
	var mod int64
	err := s.db.read.QueryRowContext(ctx, `SELECT value, modified FROM cert_data WHERE key = ?`, key).Scan(&value, &mod)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, tollgate.Errorf(tollgate.ENotFound, "no cert data %s", key)
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("get cert data: %w", err)
	}
	return value, time.UnixMicro(mod).UTC(), nil
}

// DeleteCert removes key and the keys below it. ENotFound if none.
func (s *CertStore) DeleteCert(ctx context.Context, key string) error {
	res, err := s.db.write.ExecContext(ctx, `DELETE FROM cert_data WHERE key = ? OR (key > ? AND key < ?)`, key, key+"/", key+"0")
	if err != nil {
		return fmt.Errorf("delete cert data: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return tollgate.Errorf(tollgate.ENotFound, "no cert data %s", key)
	}
	return nil
}

// CertKeys lists the keys below prefix, ordered.
func (s *CertStore) CertKeys(ctx context.Context, prefix string) ([]string, error) {
	q, args := `SELECT key FROM cert_data ORDER BY key`, []any{}
	if prefix != "" {
		q, args = `SELECT key FROM cert_data WHERE key > ? AND key < ? ORDER BY key`, []any{prefix + "/", prefix + "0"}
	}
	rows, err := s.db.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list cert data: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("list cert data: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list cert data: %w", err)
	}
	return out, nil
}

// LockCert takes or extends the lock name for owner when it is free,
// expired or owner's.
func (s *CertStore) LockCert(ctx context.Context, name, owner string, until, now time.Time) (bool, error) {
	res, err := s.db.write.ExecContext(ctx,
		`INSERT INTO cert_locks (name, owner, until) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
		WHERE cert_locks.owner = excluded.owner OR cert_locks.until <= ?`,
		name, owner, until.UnixMicro(), now.UnixMicro())
	if err != nil {
		return false, fmt.Errorf("lock cert data: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// UnlockCert releases owner's lock name.
func (s *CertStore) UnlockCert(ctx context.Context, name, owner string) error {
	if _, err := s.db.write.ExecContext(ctx, `DELETE FROM cert_locks WHERE name = ? AND owner = ?`, name, owner); err != nil {
		return fmt.Errorf("unlock cert data: %w", err)
	}
	return nil
}

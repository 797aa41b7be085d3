package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// CertStore keeps TLS material and its locks (migration 00080), shared by
// every replica.
type CertStore struct{ db *DB }

var _ tollgate.CertStore = (*CertStore)(nil)

// Certs returns the TLS material store.
func (db *DB) Certs() *CertStore { return &CertStore{db: db} }

// PutCert stores value under key.
func (s *CertStore) PutCert(ctx context.Context, key string, value []byte, now time.Time) error {
	if key == "" {
		return tollgate.Errorf(tollgate.EInvalid, "empty key")
	}
	_, err := s.db.pool.Exec(ctx,
		`INSERT INTO cert_data (key, value, modified) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, modified = excluded.modified`,
		key, value, now.UTC().Truncate(time.Microsecond))
	if err != nil {
		return fmt.Errorf("put cert data: %w", err)
	}
	return nil
}

// Cert returns the value under key. ENotFound.
func (s *CertStore) Cert(ctx context.Context, key string) ([]byte, time.Time, error) {
	var value []byte
	var mod time.Time
	err := s.db.pool.QueryRow(ctx, `SELECT value, modified FROM cert_data WHERE key = $1`, key).Scan(&value, &mod)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, time.Time{}, tollgate.Errorf(tollgate.ENotFound, "no cert data %s", key)
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("get cert data: %w", err)
	}
	return value, mod.UTC(), nil
}

// DeleteCert removes key and the keys below it. ENotFound if none.
func (s *CertStore) DeleteCert(ctx context.Context, key string) error {
	tag, err := s.db.pool.Exec(ctx,
		`DELETE FROM cert_data WHERE key = $1 OR (key COLLATE "C" > $2 AND key COLLATE "C" < $3)`, key, key+"/", key+"0")
	if err != nil {
		return fmt.Errorf("delete cert data: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return tollgate.Errorf(tollgate.ENotFound, "no cert data %s", key)
	}
	return nil
}

// CertKeys lists the keys below prefix, ordered.
func (s *CertStore) CertKeys(ctx context.Context, prefix string) ([]string, error) {
	q, args := `SELECT key FROM cert_data ORDER BY key COLLATE "C"`, []any{}
	if prefix != "" {
		q = `SELECT key FROM cert_data WHERE key COLLATE "C" > $1 AND key COLLATE "C" < $2 ORDER BY key COLLATE "C"`
		args = []any{prefix + "/", prefix + "0"}
	}
	rows, _ := s.db.pool.Query(ctx, q, args...)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list cert data: %w", err)
	}
	return out, nil
}

// LockCert takes or extends the lock name for owner when it is free,
// expired or owner's.
func (s *CertStore) LockCert(ctx context.Context, name, owner string, until, now time.Time) (bool, error) {
	tag, err := s.db.pool.Exec(ctx,
		`INSERT INTO cert_locks (name, owner, until) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
		WHERE cert_locks.owner = excluded.owner OR cert_locks.until <= $4`,
		name, owner, until.UTC().Truncate(time.Microsecond), now.UTC().Truncate(time.Microsecond))
	if err != nil {
		return false, fmt.Errorf("lock cert data: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// UnlockCert releases owner's lock name.
func (s *CertStore) UnlockCert(ctx context.Context, name, owner string) error {
	if _, err := s.db.pool.Exec(ctx, `DELETE FROM cert_locks WHERE name = $1 AND owner = $2`, name, owner); err != nil {
		return fmt.Errorf("unlock cert data: %w", err)
	}
	return nil
}

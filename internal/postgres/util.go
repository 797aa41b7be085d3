package postgres

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// newID returns prefix followed by 16 random lowercase base32 characters
// (80 bits), e.g. "usr_k3v9q0c2m1x7b4ab".
func newID(prefix string) string {
	b := make([]byte, 10)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return prefix + strings.ToLower(base32.StdEncoding.EncodeToString(b))
}

// stamp returns the store clock's now in the stored precision.
func (db *DB) stamp() time.Time { return db.now().UTC().Truncate(time.Microsecond) }

// toTime converts t for storage: UTC, or NULL for zero.
func toTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

// fromTime converts a stored time back; NULL becomes the zero time.
func fromTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func isUnique(err error) bool     { return pgCode(err) == "23505" }
func isForeignKey(err error) bool { return pgCode(err) == "23503" }

// nonNil stores a nil byte slice as an empty bytea rather than NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// mustAffect returns ENotFound (with the formatted message) when tag
// reports no changed row.
func mustAffect(tag pgconn.CommandTag, format string, args ...any) error {
	if tag.RowsAffected() == 0 {
		return tollgate.Errorf(tollgate.ENotFound, format, args...)
	}
	return nil
}

package sqlite

import (
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// newID returns prefix followed by 16 random lowercase base32 characters
// (80 bits), e.g. "usr_k3v9q0c2m1x7b4ab".
func newID(prefix string) string {
	b := make([]byte, 10)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return prefix + strings.ToLower(base32.StdEncoding.EncodeToString(b))
}

// toTime converts t for storage: UTC microseconds, or NULL for zero.
func toTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// fromTime converts a stored time back; NULL becomes the zero time.
func fromTime(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// isForeignKey reports whether err is a FOREIGN KEY violation.
func isForeignKey(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// storeErr turns a failure of the disk under the database (full, or an I/O
// error) into EUnavailable with err kept for the logs, so a caller is asked
// to retry rather than shown an internal error; other errors pass as they
// are.
func storeErr(err error) error {
	if err == nil || tollgate.ErrorCode(err) != tollgate.EInternal {
		return err
	}
	var e *sqlite.Error
	disk := errors.Is(err, syscall.ENOSPC)
	if errors.As(err, &e) {
		c := e.Code() & 0xff // the primary result code
		disk = disk || c == sqlite3.SQLITE_FULL || c == sqlite3.SQLITE_IOERR
	}
	if !disk {
		return err
	}
	return tollgate.Unavailable(err, 1, "the store cannot write right now; try again shortly")
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// splitScopes turns the stored space-separated scopes into a slice (nil
// when there are none).
func splitScopes(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Fields(s)
}

// stamp returns the store clock's now in the stored precision.
func (db *DB) stamp() time.Time { return db.now().UTC().Truncate(time.Microsecond) }

// nonNil stores a nil byte slice as an empty BLOB rather than NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// mustAffect returns ENotFound (with the formatted message) when res
// changed no row.
func mustAffect(res sql.Result, format string, args ...any) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("rows affected: %w", err)
	}
	if n == 0 {
		return tollgate.Errorf(tollgate.ENotFound, format, args...)
	}
	return nil
}

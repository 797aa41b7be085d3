// Package sqlite implements the tollgate stores on an embedded SQLite
// database (modernc.org/sqlite, pure Go), the default single-node engine.
//
// The database runs in WAL mode. Writes go through a pool of exactly one
// connection whose transactions begin IMMEDIATE, so writers queue in the
// process instead of failing with SQLITE_BUSY; reads use a separate pool of
// query-only connections that proceed in parallel with the writer.
//
// The usage ledger keeps the records of calls still running (open records)
// out of the database, in memory and in an append-only journal beside the
// database file (<path>-open.<n>.journal, see journal.go); only settled
// records are inserted. The journal is created by the first ledger write,
// so a process that only reads never creates or touches it.
//
// Times are stored as INTEGER microseconds since the Unix epoch, in UTC; a
// zero time.Time is stored as NULL. Times read back are in UTC and truncated
// to the microsecond.
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Option configures Open.
type Option func(*options)

type options struct {
	busyTimeout     time.Duration
	readConns       int
	now             func() time.Time
	segSize         int64
	checkpointEvery time.Duration
}

// WithBusyTimeout sets how long a connection waits for a lock held by
// another process (e.g. the CLI while the server runs). Defaults to 5s.
func WithBusyTimeout(d time.Duration) Option { return func(o *options) { o.busyTimeout = d } }

// WithReadConns sets the size of the read pool. Defaults to
// max(4, GOMAXPROCS).
func WithReadConns(n int) Option { return func(o *options) { o.readConns = n } }

// WithClock sets the clock used for CreatedAt, UpdatedAt and similar stamps
// the store fills in. Defaults to time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithCheckpointInterval sets how often the WAL is checkpointed into the
// database file, on a connection of its own. Defaults to 200ms.
func WithCheckpointInterval(d time.Duration) Option {
	return func(o *options) { o.checkpointEvery = d }
}

// WithJournalSegmentSize sets the size past which the usage ledger's
// journal of open records moves on to a new segment file. Defaults to
// 4 MiB.
func WithJournalSegmentSize(n int64) Option { return func(o *options) { o.segSize = n } }

// DB is an open SQLite database. It implements tollgate.Store.
type DB struct {
	path  string
	read  *sql.DB   // query-only connections, for reads outside transactions
	write writePool // one connection; BEGIN IMMEDIATE
	ckpt  *checkpointer
	now   func() time.Time
	// writeStmts and readStmts keep the job queue's prepared statements.
	writeStmts, readStmts stmtCache
	// tx, when set, is the transaction of AuditStore.Audited: every
	// statement of this DB's stores runs in it.
	tx *sql.Tx

	tenants     *TenantStore
	users       *UserStore
	apiKeys     *APIKeyStore
	signingKeys *SigningKeyStore
	refresh     *RefreshTokenStore
	revocations *RevocationStore
	ledger      *Ledger
}

var _ tollgate.Store = (*DB)(nil)

// Open opens (creating if needed) the database file at path. It does not
// migrate; call Migrate. An in-memory database (":memory:") is not
// supported, since the read and write pools must share one file.
func Open(ctx context.Context, path string, opts ...Option) (*DB, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	o.busyTimeout = cmp.Or(o.busyTimeout, 5*time.Second)
	o.readConns = cmp.Or(o.readConns, max(4, runtime.GOMAXPROCS(0)))
	o.segSize = cmp.Or(o.segSize, defaultSegmentSize)
	o.checkpointEvery = cmp.Or(o.checkpointEvery, 200*time.Millisecond)
	if o.now == nil {
		o.now = time.Now
	}
	if path == "" || strings.Contains(path, "?") || strings.Contains(path, ":memory:") {
		return nil, fmt.Errorf("open sqlite: invalid database path %q", path)
	}

	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.busyTimeout.Milliseconds()))
	common.Add("_pragma", "foreign_keys(1)")
	common.Add("_pragma", "synchronous(NORMAL)")

	wq := cloneValues(common)
	wq.Add("_pragma", "journal_mode(WAL)")
	// Statement journals (a multi-row insert inside a transaction keeps
	// one) stay in memory instead of a temporary file written page by page.
	wq.Add("_pragma", "temp_store(MEMORY)")
	// WAL checkpoints run on their own connection (see checkpointer), not
	// inside a commit of the writer that every waiting request queues on.
	wq.Add("_pragma", "wal_autocheckpoint(0)")
	wq.Set("_txlock", "immediate")
	write, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	// Connect the writer first: it switches the file to WAL before any
	// reader opens it.
	if err := write.PingContext(ctx); err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}

	rq := cloneValues(common)
	rq.Add("_pragma", "query_only(1)")
	read, err := sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	read.SetMaxOpenConns(o.readConns)
	read.SetMaxIdleConns(o.readConns)
	if err := read.PingContext(ctx); err != nil {
		_ = write.Close()
		_ = read.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}

	ckpt, err := startCheckpointer(path, common, o.checkpointEvery)
	if err != nil {
		_ = write.Close()
		_ = read.Close()
		return nil, err
	}
	db := &DB{path: path, read: read, write: writePool{write}, ckpt: ckpt, now: o.now}
	db.tenants = &TenantStore{db: db}
	db.users = &UserStore{db: db}
	db.apiKeys = &APIKeyStore{db: db}
	db.signingKeys = &SigningKeyStore{db: db}
	db.refresh = &RefreshTokenStore{db: db}
	db.revocations = &RevocationStore{db: db}
	db.ledger = newLedger(db, o.segSize)
	return db, nil
}

func cloneValues(v url.Values) url.Values {
	c := make(url.Values, len(v))
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// Tenants returns the tenant store.
func (db *DB) Tenants() tollgate.TenantStore { return db.tenants }

// Users returns the user store.
func (db *DB) Users() tollgate.UserStore { return db.users }

// APIKeys returns the API key store.
func (db *DB) APIKeys() tollgate.APIKeyStore { return db.apiKeys }

// SigningKeys returns the signing key store.
func (db *DB) SigningKeys() tollgate.SigningKeyStore { return db.signingKeys }

// RefreshTokens returns the refresh token store.
func (db *DB) RefreshTokens() tollgate.RefreshTokenStore { return db.refresh }

// Revocations returns the access-token denylist.
func (db *DB) Revocations() tollgate.RevocationStore { return db.revocations }

// Ping reports whether both pools answer.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.read.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	if err := db.write.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	return nil
}

// Close closes the usage journal and both pools.
func (db *DB) Close() error {
	return errors.Join(db.ledger.close(), db.ckpt.stop(), db.read.Close(), db.write.Close())
}

// withTx runs fn in a write transaction (BEGIN IMMEDIATE on the single write
// connection), committing when fn returns nil and rolling back otherwise.
// An fn that must both change rows and return an error (e.g. revoking a
// refresh family on reuse) returns the error via commitErr instead.
func (db *DB) withTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if db.tx != nil {
		// Already in the transaction of an audited change: it commits.
		err := fn(db.tx)
		if ce, ok := errors.AsType[*commitErr](err); ok {
			return ce.err
		}
		return err
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return storeErr(fmt.Errorf("begin: %w", err))
	}
	err = fn(tx)
	var ce *commitErr
	if err != nil && !errors.As(err, &ce) {
		_ = tx.Rollback()
		return storeErr(err)
	}
	if cerr := tx.Commit(); cerr != nil {
		return storeErr(fmt.Errorf("commit: %w", cerr))
	}
	if ce != nil {
		return ce.err
	}
	return nil
}

// writePool is the write connection as the stores use it: a statement that
// fails because the disk is full or failing is EUnavailable (storeErr).
// Transactions are classified by withTx and the ledger's commit.
type writePool struct{ *sql.DB }

func (p writePool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := p.DB.ExecContext(ctx, query, args...)
	return res, storeErr(err)
}

// commitErr wraps an error that withTx returns after committing.
type commitErr struct{ err error }

func (e *commitErr) Error() string { return e.err.Error() }
func (e *commitErr) Unwrap() error { return e.err }

// conn runs statements: a pool, or a transaction.
type conn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// writer is where the identity stores write: the write pool, or the
// audited transaction.
func (db *DB) writer() conn {
	if db.tx != nil {
		return db.tx
	}
	return db.write
}

// reader is where the identity stores read: the read pool, or the
// audited transaction (which sees its own writes).
func (db *DB) reader() conn {
	if db.tx != nil {
		return db.tx
	}
	return db.read
}

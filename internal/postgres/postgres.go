// Package postgres implements the tollgate stores on PostgreSQL (pgx/v5 and
// pgxpool), the engine of cluster mode where many gateway replicas share one
// database.
//
// Every table lives in one schema, "public" unless WithSchema names another;
// the schema is created when missing and set as the search_path of every
// pooled connection, so several deployments (or test runs) can share a
// database without colliding.
//
// Times are stored as timestamptz, which keeps microseconds; times read back
// are in UTC and truncated to the microsecond. A zero time.Time is NULL.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Option configures Open.
type Option func(*options)

type options struct {
	schema   string
	maxConns int32
	now      func() time.Time
}

// WithSchema keeps every table in the named schema, created when missing.
// Defaults to "public".
func WithSchema(name string) Option { return func(o *options) { o.schema = name } }

// WithMaxConns sets the pool size. Defaults to the connection string's
// pool_max_conns, or pgxpool's default of max(4, NumCPU).
func WithMaxConns(n int32) Option { return func(o *options) { o.maxConns = n } }

// WithClock sets the clock used for CreatedAt, UpdatedAt and similar stamps
// the store fills in. Defaults to time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// DB is a pool of connections to a PostgreSQL database. It implements
// tollgate.Store.
type DB struct {
	pool   pool
	schema string
	now    func() time.Time
	// tx, when set, is the transaction of AuditStore.Audited: every
	// statement of this DB's stores runs in it.
	tx pgx.Tx

	tenants     *TenantStore
	users       *UserStore
	apiKeys     *APIKeyStore
	signingKeys *SigningKeyStore
	refresh     *RefreshTokenStore
	revocations *RevocationStore
}

var _ tollgate.Store = (*DB)(nil)

// Open connects to the database at url (a postgres:// URL or key=value
// connection string) and checks that it answers. It does not migrate; call
// Migrate.
func Open(ctx context.Context, url string, opts ...Option) (*DB, error) {
	o := options{schema: "public", now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.schema == "" {
		return nil, errors.New("open postgres: empty schema name")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, errors.New("open postgres: invalid connection string")
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	schema := pgx.Identifier{o.schema}.Sanitize()
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := createSchema(ctx, p, o.schema); err != nil {
		p.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	db := &DB{pool: pool{p}, schema: o.schema, now: o.now}
	db.tenants = &TenantStore{db: db}
	db.users = &UserStore{db: db}
	db.apiKeys = &APIKeyStore{db: db}
	db.signingKeys = &SigningKeyStore{db: db}
	db.refresh = &RefreshTokenStore{db: db}
	db.revocations = &RevocationStore{db: db}
	return db, nil
}

// createSchema creates the schema when it is missing. It looks first, so a
// role without CREATE on the database can use a schema that exists.
func createSchema(ctx context.Context, pool *pgxpool.Pool, name string) error {
	var exists bool
	err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, name).Scan(&exists)
	if err != nil {
		return fmt.Errorf("look up schema: %w", err)
	}
	if exists {
		return nil
	}
	// Replicas starting together race here: IF NOT EXISTS still fails
	// with a unique violation when another session creates the schema
	// between the check and the insert, and then the schema exists.
	if _, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{name}.Sanitize()); err != nil && !isUnique(err) {
		return fmt.Errorf("create schema: %w", err)
	}
	return nil
}

// Schema returns the name of the schema that holds the tables.
func (db *DB) Schema() string { return db.schema }

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

// Ping reports whether the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// Close closes the pool, waiting for acquired connections to be released.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// withTx runs fn in a transaction, committing when fn returns nil and
// rolling back otherwise. An fn that must both change rows and return an
// error (e.g. revoking a refresh family on reuse) wraps the error in
// commitErr; withTx then commits and returns the wrapped error.
func (db *DB) withTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if db.tx != nil {
		// Already in the transaction of an audited change: it commits.
		err := fn(db.tx)
		if ce, ok := errors.AsType[*commitErr](err); ok {
			return ce.err
		}
		return err
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	err = fn(tx)
	var ce *commitErr
	if err != nil && !errors.As(err, &ce) {
		_ = tx.Rollback(ctx)
		return storeErr(err)
	}
	if cerr := tx.Commit(ctx); cerr != nil {
		return storeErr(fmt.Errorf("commit: %w", cerr))
	}
	if ce != nil {
		return ce.err
	}
	return nil
}

// commitErr wraps an error that withTx returns after committing.
type commitErr struct{ err error }

func (e *commitErr) Error() string { return e.err.Error() }
func (e *commitErr) Unwrap() error { return e.err }

// conn runs statements: a pool, or a transaction.
type conn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// conn is where the identity stores run their statements: the pool, or
// the audited transaction.
func (db *DB) conn() conn {
	if db.tx != nil {
		return db.tx
	}
	return db.pool
}

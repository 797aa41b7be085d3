package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrations holds the schema, one goose SQL file per step. Numbering:
// 00001–00009 identity, 00010–00019 usage ledger and budgets, 00020–00029
// bans and protection. Because each area owns a range, a new file may sort
// before one already applied; Migrate applies such files too.
//
//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies every pending migration to the DB's schema. Replicas that
// start together are serialised by an advisory lock (one per schema), so it
// is safe to call on every start.
func (db *DB) Migrate(ctx context.Context) (err error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte("tollgate-migrate:" + db.schema))
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(h.Sum64()>>1)),
		lock.WithLockTimeout(1, 300), // try every second for 5 minutes
	)
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	sqlDB := stdlib.OpenDBFromPool(db.pool.Pool) // closing it leaves the pool open
	defer func() { err = errors.Join(err, sqlDB.Close()) }()
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, fsys,
		goose.WithSessionLocker(locker), goose.WithAllowOutofOrder(true))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate postgres: %w", err)
	}
	return nil
}

// Empty reports whether the schema holds no tollgate tables yet: a store
// that Migrate would create from nothing.
func (db *DB) Empty(ctx context.Context) (bool, error) {
	var exists bool
	err := db.pool.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'users')`,
		db.schema).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("look up tables: %w", err)
	}
	return !exists, nil
}

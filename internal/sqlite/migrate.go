package sqlite

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

// migrations holds the schema, one goose SQL file per step. Numbering:
// 00001–00009 identity, 00010–00019 usage ledger and budgets, 00020–00029
// bans and protection. Because each area owns a range, a new file may sort
// before one already applied; Migrate applies such files too.
//
//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies every pending migration. It is safe to call on every
// start; it does nothing when the schema is current.
func (db *DB) Migrate(ctx context.Context) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	return db.migrate(ctx, fsys)
}

// migrate applies the goose migrations in fsys over the write pool, so they
// queue behind (and never race) the store's own writes.
func (db *DB) migrate(ctx context.Context, fsys fs.FS) error {
	p, err := goose.NewProvider(goose.DialectSQLite3, db.write.DB, fsys, goose.WithAllowOutofOrder(true))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate sqlite: %w", err)
	}
	return nil
}

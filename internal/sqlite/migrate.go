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
// bans and protection.
//
//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies every pending migration. It is safe to call on every
// start; it does nothing when the schema is current.
func (db *DB) Migrate(ctx context.Context) error {
	p, err := db.migrator()
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate sqlite: %w", err)
	}
	return nil
}

// migrator returns a goose provider over the write pool, so migrations
// queue behind (and never race) the store's own writes.
func (db *DB) migrator() (*goose.Provider, error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db.write, fsys)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}

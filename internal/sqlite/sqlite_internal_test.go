package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/tollgate/tollgate/internal/tollgate"
)

func open(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestMigrate(t *testing.T) {
	t.Run("Twice", func(t *testing.T) {
		db := open(t, filepath.Join(t.TempDir(), "db"))
		for range 2 {
			if err := db.Migrate(t.Context()); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
		}
	})
	t.Run("FileSortingBeforeAppliedOnes", func(t *testing.T) {
		db := open(t, filepath.Join(t.TempDir(), "db"))
		file := func(table string) *fstest.MapFile {
			return &fstest.MapFile{Data: []byte("-- +goose Up\nCREATE TABLE " + table + " (x INTEGER);\n")}
		}
		steps := []fstest.MapFS{
			{"00001_a.sql": file("a"), "00010_b.sql": file("b")},
			{"00001_a.sql": file("a"), "00002_c.sql": file("c"), "00010_b.sql": file("b")},
		}
		for i, fsys := range steps {
			if err := db.migrate(t.Context(), fsys); err != nil {
				t.Fatalf("step %d: migrate: %v", i, err)
			}
		}
		if _, err := db.write.ExecContext(t.Context(), `INSERT INTO c (x) VALUES (1)`); err != nil {
			t.Errorf("table of the late migration 00002: %v", err)
		}
	})
}

func TestOpen(t *testing.T) {
	t.Run("WALAndQueryOnlyReaders", func(t *testing.T) {
		db := open(t, filepath.Join(t.TempDir(), "db"))
		for name, pool := range map[string]interface {
			QueryRowContext(context.Context, string, ...any) *sql.Row
		}{"read": db.read, "write": db.write} {
			var mode string
			if err := pool.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
				t.Errorf("%s pool journal_mode = %q, %v; want wal", name, mode, err)
			}
		}
		if _, err := db.read.ExecContext(t.Context(), `CREATE TABLE t (x INTEGER)`); err == nil {
			t.Errorf("read pool accepted a write")
		}
	})
	t.Run("InvalidPath", func(t *testing.T) {
		for _, path := range []string{"", ":memory:", "file:x?mode=memory"} {
			if _, err := Open(t.Context(), path); err == nil {
				t.Errorf("Open(%q) = nil error, want one", path)
			}
		}
	})
	t.Run("SecondProcessWritesConcurrently", func(t *testing.T) {
		// The CLI opens the same file while the server runs: writers of
		// both wait for each other instead of failing with SQLITE_BUSY.
		path := filepath.Join(t.TempDir(), "db")
		server, cli := open(t, path), open(t, path)
		if err := server.Migrate(t.Context()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		var wg sync.WaitGroup
		for p, db := range []*DB{server, cli} {
			wg.Go(func() {
				for i := range 25 {
					ten := &tollgate.Tenant{Name: fmt.Sprintf("t%d-%d", p, i)}
					if err := db.Tenants().CreateTenant(t.Context(), ten); err != nil {
						t.Errorf("CreateTenant: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		all, err := cli.Tenants().Tenants(t.Context())
		if err != nil || len(all) != 50 {
			t.Errorf("Tenants = %d, %v; want 50", len(all), err)
		}
	})
}

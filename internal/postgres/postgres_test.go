package postgres_test

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/postgres"
	"github.com/tollgate/tollgate/internal/storetest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) tollgate.Store { return MustOpen(t) })
}

// MustOpen opens and migrates a store in a new schema of the database named
// by TOLLGATE_TEST_POSTGRES, dropped when the test ends. It skips the test
// when the variable is unset.
func MustOpen(tb testing.TB) *postgres.DB {
	tb.Helper()
	url := os.Getenv("TOLLGATE_TEST_POSTGRES")
	if url == "" {
		tb.Skip("TOLLGATE_TEST_POSTGRES not set; skipping PostgreSQL store tests")
	}
	schema := "tg_test_" + strings.ToLower(rand.Text()[:12])
	db, err := postgres.Open(tb.Context(), url, postgres.WithSchema(schema))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		dropSchema(tb, url, schema)
	})
	if err := db.Migrate(tb.Context()); err != nil {
		tb.Fatalf("Migrate: %v", err)
	}
	return db
}

func dropSchema(tb testing.TB, url, schema string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Errorf("drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
		tb.Errorf("drop schema %s: %v", schema, err)
	}
}

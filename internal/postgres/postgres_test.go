package postgres_test

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/postgres"
	"github.com/tollgate/tollgate/internal/storetest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestStore(t *testing.T) {
	testURL(t)
	storetest.Run(t, func(t *testing.T) tollgate.Store { return MustOpen(t) })
}

func TestSchemas(t *testing.T) {
	testURL(t)
	t.Run("Isolated", func(t *testing.T) {
		a, b := MustOpen(t), MustOpen(t)
		for _, db := range []*postgres.DB{a, b} {
			storetest.MustTenant(t, db, "acme", "Acme")
		}
		all, err := a.Tenants().Tenants(t.Context())
		if err != nil || len(all) != 1 {
			t.Errorf("Tenants = %d, %v; want 1", len(all), err)
		}
	})
	t.Run("ReplicasMigrateTogether", func(t *testing.T) {
		url, schema := newSchema(t)
		var replicas []*postgres.DB
		for range 3 {
			db, err := postgres.Open(t.Context(), url, postgres.WithSchema(schema))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { _ = db.Close() })
			replicas = append(replicas, db)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, db := range replicas {
			wg.Go(func() {
				<-start
				if err := db.Migrate(t.Context()); err != nil {
					t.Errorf("Migrate: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		storetest.MustTenant(t, replicas[0], "acme", "Acme")
		if _, err := replicas[1].Tenants().Tenant(t.Context(), "acme"); err != nil {
			t.Errorf("tenant written by one replica, read by another: %v", err)
		}
	})
}

// MustOpen opens and migrates a store in a new schema of the database named
// by TOLLGATE_TEST_POSTGRES, dropped when the test ends. It skips the test
// when the variable is unset.
func MustOpen(tb testing.TB) *postgres.DB {
	tb.Helper()
	url, schema := newSchema(tb)
	db, err := postgres.Open(tb.Context(), url, postgres.WithSchema(schema))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	if err := db.Migrate(tb.Context()); err != nil {
		tb.Fatalf("Migrate: %v", err)
	}
	return db
}

// newSchema returns the test database URL and a unique schema name; the
// schema is dropped when the test ends, after the stores opened later are
// closed. It skips the test when TOLLGATE_TEST_POSTGRES is unset.
func newSchema(tb testing.TB) (url, schema string) {
	tb.Helper()
	url = testURL(tb)
	schema = "tg_test_" + strings.ToLower(rand.Text()[:12])
	tb.Cleanup(func() { dropSchema(tb, url, schema) })
	return url, schema
}

// testURL returns TOLLGATE_TEST_POSTGRES, or skips the test when it is unset.
func testURL(tb testing.TB) string {
	tb.Helper()
	url := os.Getenv("TOLLGATE_TEST_POSTGRES")
	if url == "" {
		tb.Skip("TOLLGATE_TEST_POSTGRES not set; skipping PostgreSQL store tests")
	}
	return url
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

func TestAuditStore(t *testing.T) {
	testURL(t)
	storetest.Audit(t, func(t *testing.T) (tollgate.Store, tollgate.AuditStore) {
		db := MustOpen(t)
		return db, db.Audit()
	})
}

// BenchmarkAppendAudit measures what a login's audit event costs the
// cluster store.
func BenchmarkAppendAudit(b *testing.B) {
	testURL(b)
	a := MustOpen(b).Audit()
	for b.Loop() {
		e := &tollgate.AuditEvent{Actor: "usr_x", ActorName: "alice", Action: tollgate.AuditLogin, Outcome: "ok", IP: "192.0.2.1"}
		if err := a.AppendAudit(b.Context(), e); err != nil {
			b.Fatal(err)
		}
	}
}

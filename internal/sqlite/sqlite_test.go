package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/tollgate/tollgate/internal/sqlite"
	"github.com/tollgate/tollgate/internal/storetest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) tollgate.Store { return MustOpen(t) })
}

// MustOpen opens and migrates a database in a fresh temporary directory.
func MustOpen(tb testing.TB) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(tb.Context(), filepath.Join(tb.TempDir(), "tollgate.db"))
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

func TestAuditStore(t *testing.T) {
	storetest.Audit(t, func(t *testing.T) (tollgate.Store, tollgate.AuditStore) {
		db := MustOpen(t)
		return db, db.Audit()
	})
}

// BenchmarkAppendAudit measures what a login's audit event costs the
// single-node store.
func BenchmarkAppendAudit(b *testing.B) {
	a := MustOpen(b).Audit()
	for b.Loop() {
		e := &tollgate.AuditEvent{Actor: "usr_x", ActorName: "alice", Action: tollgate.AuditLogin, Outcome: "ok", IP: "192.0.2.1"}
		if err := a.AppendAudit(b.Context(), e); err != nil {
			b.Fatal(err)
		}
	}
}

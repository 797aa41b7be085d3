package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/sqlite"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// TestCheckpointsReachTheDatabaseFile: with the writer's automatic
// checkpoint off, the background checkpointer still moves committed pages
// from the WAL into the database file, and Close leaves nothing behind.
func TestCheckpointsReachTheDatabaseFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tollgate.db")
	db, err := sqlite.Open(ctx, path, sqlite.WithCheckpointInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	if err := db.Tenants().CreateTenant(ctx, &tollgate.Tenant{ID: "acme", Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for size(path) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	before := size(path)
	for i := range 500 {
		u := &tollgate.User{Name: fmt.Sprintf("user-%03d-%s", i, "padding-padding-padding-padding"), TenantID: "acme", Role: "user"}
		if err := db.Users().CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for size(path) < before+64<<10 {
		if time.Now().After(deadline.Add(3 * time.Second)) {
			t.Fatalf("database file %d bytes (was %d): the WAL was never checkpointed into it", size(path), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	again, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	users, err := again.Users().Users(ctx, "acme")
	if err != nil || len(users) != 500 {
		t.Fatalf("after reopening: %d users, %v", len(users), err)
	}
}

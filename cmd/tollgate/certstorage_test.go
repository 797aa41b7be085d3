package main

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/sqlite"
	"github.com/tollgate/tollgate/internal/tlsserve"
)

// TestStoreStorage checks certmagic's storage contract on the store:
// missing keys are fs.ErrNotExist, lists and stats see "directories", a
// delete takes a whole tree, and a lock held by one replica blocks
// another until it is released.
func TestStoreStorage(t *testing.T) {
	ctx := t.Context()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	a, b := tlsserve.NewStoreStorage(db.Certs(), nil), tlsserve.NewStoreStorage(db.Certs(), nil)

	if _, err := a.Load(ctx, "certificates/x/x.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing key: %v, want fs.ErrNotExist", err)
	}
	for _, k := range []string{"certificates/ca/a.example/a.example.crt", "certificates/ca/a.example/a.example.key", "certificates/ca/b.example/b.example.crt", "acme/ca/users/ops/reg.json"} {
		if err := a.Store(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := b.Load(ctx, "certificates/ca/a.example/a.example.key"); err != nil || string(v) != "certificates/ca/a.example/a.example.key" {
		t.Fatalf("Load through another replica: %q, %v", v, err)
	}
	if got, _ := a.List(ctx, "certificates/ca", false); !slices.Equal(got, []string{"certificates/ca/a.example", "certificates/ca/b.example"}) {
		t.Errorf("List non-recursive = %v", got)
	}
	if got, _ := a.List(ctx, "certificates", true); len(got) != 3 {
		t.Errorf("List recursive = %v", got)
	}
	if info, err := a.Stat(ctx, "certificates/ca/a.example"); err != nil || info.IsTerminal {
		t.Errorf("Stat of a directory = %+v, %v", info, err)
	}
	if info, err := a.Stat(ctx, "certificates/ca/b.example/b.example.crt"); err != nil || !info.IsTerminal || info.Size == 0 || info.Modified.IsZero() {
		t.Errorf("Stat of a key = %+v, %v", info, err)
	}
	if !a.Exists(ctx, "acme/ca") || a.Exists(ctx, "acme/c") {
		t.Error("Exists is wrong about a directory or a prefix that is no directory")
	}
	if err := a.Delete(ctx, "certificates/ca/a.example"); err != nil {
		t.Fatal(err)
	}
	if a.Exists(ctx, "certificates/ca/a.example/a.example.crt") || !a.Exists(ctx, "certificates/ca/b.example") {
		t.Error("Delete of a directory left its keys or took its neighbour")
	}
	if err := a.Delete(ctx, "certificates/none"); err != nil {
		t.Errorf("Delete of a missing key: %v, want nil", err)
	}

	if err := a.Lock(ctx, "issue_cert_a.example"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	if err := b.Lock(short, "issue_cert_a.example"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("b.Lock while a holds the lock: %v, want it to wait", err)
	}
	if err := a.Unlock(ctx, "issue_cert_a.example"); err != nil {
		t.Fatal(err)
	}
	if err := b.Lock(ctx, "issue_cert_a.example"); err != nil {
		t.Fatalf("b.Lock after a released it: %v", err)
	}
	if err := b.Unlock(ctx, "issue_cert_a.example"); err != nil {
		t.Fatal(err)
	}
}

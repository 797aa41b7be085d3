package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// RunCertStore runs the TLS material suite on an empty store.
func RunCertStore(t *testing.T, s tollgate.CertStore) {
	ctx := t.Context()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	t.Run("PutGetReplace", func(t *testing.T) {
		if _, _, err := s.Cert(ctx, "a/missing"); tollgate.ErrorCode(err) != tollgate.ENotFound {
			t.Fatalf("Cert of a missing key: %v, want ENotFound", err)
		}
		if err := s.PutCert(ctx, "acme/x/x.crt", []byte("one"), now); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCert(ctx, "acme/x/x.crt", []byte("two\x00bytes"), now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		v, mod, err := s.Cert(ctx, "acme/x/x.crt")
		if err != nil || string(v) != "two\x00bytes" || !mod.Equal(now.Add(time.Minute)) {
			t.Fatalf("Cert = %q, %v, %v; want the replaced value and its time", v, mod, err)
		}
		if err := s.PutCert(ctx, "", []byte("x"), now); tollgate.ErrorCode(err) != tollgate.EInvalid {
			t.Fatalf("PutCert with an empty key: %v, want EInvalid", err)
		}
	})
	t.Run("ListAndDeleteTrees", func(t *testing.T) {
		for _, k := range []string{"tree/a", "tree/b/c", "tree/b/d", "tree0", "treeX/e", "tre"} {
			if err := s.PutCert(ctx, k, []byte(k), now); err != nil {
				t.Fatal(err)
			}
		}
		keys, err := s.CertKeys(ctx, "tree")
		if err != nil || !slices.Equal(keys, []string{"tree/a", "tree/b/c", "tree/b/d"}) {
			t.Fatalf("CertKeys(tree) = %v, %v; want only the keys below tree/", keys, err)
		}
		all, _ := s.CertKeys(ctx, "")
		if !slices.Contains(all, "tree0") || !slices.Contains(all, "acme/x/x.crt") || !slices.IsSorted(all) {
			t.Fatalf("CertKeys(\"\") = %v", all)
		}
		if err := s.DeleteCert(ctx, "tree/b"); err != nil {
			t.Fatal(err)
		}
		if keys, _ := s.CertKeys(ctx, "tree"); !slices.Equal(keys, []string{"tree/a"}) {
			t.Fatalf("after deleting tree/b: %v", keys)
		}
		if err := s.DeleteCert(ctx, "tree"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Cert(ctx, "tree0"); err != nil {
			t.Fatalf("deleting tree removed its neighbour tree0: %v", err)
		}
		if err := s.DeleteCert(ctx, "tree"); tollgate.ErrorCode(err) != tollgate.ENotFound {
			t.Fatalf("deleting nothing: %v, want ENotFound", err)
		}
	})
	t.Run("Locks", func(t *testing.T) {
		ok, err := s.LockCert(ctx, "issue_cert_x", "a", now.Add(time.Minute), now)
		if err != nil || !ok {
			t.Fatalf("first lock: %v, %v", ok, err)
		}
		if ok, _ := s.LockCert(ctx, "issue_cert_x", "b", now.Add(time.Minute), now.Add(time.Second)); ok {
			t.Fatal("b took a's live lock")
		}
		if ok, _ := s.LockCert(ctx, "issue_cert_x", "a", now.Add(2*time.Minute), now.Add(time.Second)); !ok {
			t.Fatal("a could not extend its own lock")
		}
		if ok, _ := s.LockCert(ctx, "issue_cert_x", "b", now.Add(3*time.Minute), now.Add(90*time.Second)); ok {
			t.Fatal("b took a's extended lock")
		}
		if err := s.UnlockCert(ctx, "issue_cert_x", "b"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.LockCert(ctx, "issue_cert_x", "b", now.Add(3*time.Minute), now.Add(90*time.Second)); ok {
			t.Fatal("b's unlock released a's lock")
		}
		if ok, _ := s.LockCert(ctx, "issue_cert_x", "b", now.Add(5*time.Minute), now.Add(2*time.Minute)); !ok {
			t.Fatal("b could not take a's expired lock")
		}
		if err := s.UnlockCert(ctx, "issue_cert_x", "b"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.LockCert(ctx, "issue_cert_x", "a", now.Add(6*time.Minute), now.Add(2*time.Minute)); !ok {
			t.Fatal("the lock is still held after its owner released it")
		}
	})
}

package auth

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHasher(t *testing.T) {
	ctx := context.Background()
	h := NewHasher(2)
	hash, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not argon2id with m=19 MiB, t=2, p=1", hash)
	}
	if strings.Contains(hash, "correct horse") {
		t.Fatal("hash contains the password")
	}
	t.Run("right password", func(t *testing.T) {
		if ok, err := h.Verify(ctx, hash, "correct horse"); !ok || err != nil {
			t.Fatalf("Verify = %v, %v", ok, err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		if ok, err := h.Verify(ctx, hash, "correct horsE"); ok || err != nil {
			t.Fatalf("Verify = %v, %v", ok, err)
		}
	})
	t.Run("unknown user never matches", func(t *testing.T) {
		for _, pw := range []string{"", "dummy"} {
			if ok, err := h.Verify(ctx, "", pw); ok || err != nil {
				t.Fatalf("Verify(empty hash, %q) = %v, %v", pw, ok, err)
			}
		}
	})
	t.Run("corrupt hash is an error", func(t *testing.T) {
		for _, bad := range []string{"plain", "$argon2id$v=19$m=0,t=2,p=1$AAAA$AAAA", "$argon2i$v=19$m=19456,t=2,p=1$AAAA$AAAA"} {
			if ok, err := h.Verify(ctx, bad, "x"); ok || err == nil {
				t.Fatalf("Verify(%q) = %v, %v", bad, ok, err)
			}
		}
	})
	t.Run("salts differ", func(t *testing.T) {
		again, _ := h.Hash(ctx, "correct horse")
		if again == hash {
			t.Fatal("two hashes of one password are equal")
		}
	})
}

// TestHasherBoundsConcurrency shows that a flood of logins never runs more
// hashes at once than the limit: with the slots taken, a caller whose
// context ends gets "unavailable" instead of another 19 MiB hash.
func TestHasherBoundsConcurrency(t *testing.T) {
	h := NewHasher(1)
	h.sem <- struct{}{} // the one slot is busy
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.Verify(ctx, "", "x"); err == nil {
		t.Fatal("Verify ran a hash with every slot taken")
	}
	<-h.sem
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := h.Verify(context.Background(), "", "x"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(h.sem) != 0 {
		t.Fatalf("%d slots still held", len(h.sem))
	}
}

package token_test

import (
	"context"
	"testing"
)

func TestVerifiedTokenCache(t *testing.T) {
	ctx := context.Background()
	t.Run("hit_shares_principal", func(t *testing.T) {
		f := setup(t, setupOpts{})
		tok := f.mustIssue(t, aliceClaims)
		p1, err := f.verifier.Verify(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := f.verifier.Verify(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if p1 != p2 {
			t.Fatal("a repeated token was verified again instead of served from the cache")
		}
	})
	t.Run("bounded", func(t *testing.T) {
		f := setup(t, setupOpts{cacheSize: 32})
		toks := make([]string, 500)
		for i := range toks {
			toks[i] = f.mustIssue(t, aliceClaims)
			if _, err := f.verifier.Verify(ctx, toks[i]); err != nil {
				t.Fatal(err)
			}
		}
		for _, tok := range toks {
			if _, err := f.verifier.Verify(ctx, tok); err != nil {
				t.Fatalf("evicted token refused: %v", err)
			}
		}
	})
	t.Run("disabled_user_on_hit", func(t *testing.T) {
		f := setup(t, setupOpts{})
		tok := f.mustIssue(t, aliceClaims)
		if _, err := f.verifier.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
		f.deny.DisableUser(aliceClaims.Subject)
		_, err := f.verifier.Verify(ctx, tok)
		wantUnauthorized(t, err)
	})
}

// TestRemovedKeyRefusesCachedTokens: deleting a compromised key from the
// store refuses its tokens at the next reload, also those in the cache.
func TestRemovedKeyRefusesCachedTokens(t *testing.T) {
	ctx := context.Background()
	f := setup(t, setupOpts{})
	tok := f.mustIssue(t, aliceClaims)
	if _, err := f.verifier.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := f.keys.RotateAfter(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.verifier.Verify(ctx, tok); err != nil {
		t.Fatalf("token of a retired key refused before removal: %v", err)
	}
	for _, k := range f.store.all() {
		if k.State == "retired" {
			if err := f.store.DeleteSigningKey(ctx, k.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := f.keys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := f.verifier.Verify(ctx, tok)
	wantUnauthorized(t, err)
	if _, err := f.verifier.Verify(ctx, f.mustIssue(t, aliceClaims)); err != nil {
		t.Fatalf("new key's token: %v", err)
	}
}

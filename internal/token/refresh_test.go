package token_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/sqlite"
	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// sqliteUser creates a tenant and a user in db and returns the user.
func sqliteUser(t testing.TB, db *sqlite.DB, name string) *tollgate.User {
	t.Helper()
	ctx := context.Background()
	ten := &tollgate.Tenant{Name: "tenant-" + name}
	if err := db.Tenants().CreateTenant(ctx, ten); err != nil {
		t.Fatal(err)
	}
	u := &tollgate.User{Name: name, TenantID: ten.ID, Role: "user"}
	if err := db.Users().CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	return u
}

func newRefresher(t testing.TB) (*token.Refresher, *sqlite.DB, *fakeClock, *tollgate.User) {
	t.Helper()
	db := openSQLite(t)
	clock := newFakeClock()
	return token.NewRefresher(db.RefreshTokens(), token.RefreshOptions{Now: clock.Now}), db, clock, sqliteUser(t, db, "alice")
}

func TestRefreshRotation(t *testing.T) {
	ctx := context.Background()
	r, db, _, u := newRefresher(t)
	raw, first, err := r.Start(ctx, u.ID, []string{"infer:text"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(raw, token.RefreshPrefix) || len(raw) != len(token.RefreshPrefix)+43 {
		t.Fatalf("refresh token %q: want tgr_ + 32 bytes base64url", raw)
	}
	stored, err := db.RefreshTokens().RefreshToken(ctx, first.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stored.Hash), raw) || len(stored.Hash) != 32 {
		t.Fatal("refresh token not stored as its SHA-256")
	}
	next, rt, err := r.Rotate(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if next == raw || rt.FamilyID != first.FamilyID || rt.UserID != u.ID || strings.Join(rt.Scopes, " ") != "infer:text" {
		t.Fatalf("rotated token = %+v", rt)
	}
	if _, _, err := r.Rotate(ctx, next); err != nil {
		t.Fatalf("rotating the new token: %v", err)
	}
}

// TestRefreshReplayRevokesFamily is row 23 of jwt-attacks.md for refresh
// tokens, on the real SQLite store: a token replayed after rotation is
// refused and revokes its whole family, including the legitimate holder's
// newer token.
func TestRefreshReplayRevokesFamily(t *testing.T) {
	ctx := context.Background()
	r, _, _, u := newRefresher(t)
	stolen, first, err := r.Start(ctx, u.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	current, _, err := r.Rotate(ctx, stolen)
	if err != nil {
		t.Fatal(err)
	}
	_, replayed, err := r.Rotate(ctx, stolen)
	if !errors.Is(err, tollgate.ErrRefreshReused) {
		t.Fatalf("replay: err = %v, want ErrRefreshReused", err)
	}
	if replayed == nil || replayed.FamilyID != first.FamilyID {
		t.Fatalf("replay returned %+v, want the replayed token of family %q", replayed, first.FamilyID)
	}
	_, _, err = r.Rotate(ctx, current)
	wantUnauthorized(t, err)
	// Another family of the same user is untouched.
	other, _, err := r.Start(ctx, u.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Rotate(ctx, other); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshExpiry(t *testing.T) {
	ctx := context.Background()
	t.Run("idle", func(t *testing.T) {
		r, _, clock, u := newRefresher(t)
		raw, _, err := r.Start(ctx, u.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		clock.Add(24*time.Hour + time.Second)
		_, _, err = r.Rotate(ctx, raw)
		wantUnauthorized(t, err)
	})
	t.Run("absolute", func(t *testing.T) {
		r, _, clock, u := newRefresher(t)
		raw, _, err := r.Start(ctx, u.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Used every 20 hours, the family still ends after 30 days.
		for range 36 {
			clock.Add(20 * time.Hour)
			if raw, _, err = r.Rotate(ctx, raw); err != nil {
				break
			}
		}
		wantUnauthorized(t, err)
		if d := clock.Now().Sub(newFakeClock().Now()); d > 31*24*time.Hour {
			t.Fatalf("family lived %v, want at most 30 days", d)
		}
	})
}

func TestRefreshRevoke(t *testing.T) {
	ctx := context.Background()
	r, _, _, u := newRefresher(t)
	raw, rt, err := r.Start(ctx, u.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if family, err := r.Revoke(ctx, raw); err != nil || family != rt.FamilyID {
		t.Fatalf("Revoke = %q, %v; want family %q", family, err, rt.FamilyID)
	}
	_, _, err = r.Rotate(ctx, raw)
	wantUnauthorized(t, err)
	for _, junk := range []string{"", "tgr_x", "not-a-token", token.RefreshPrefix + enc(make([]byte, 32))} {
		if family, err := r.Revoke(ctx, junk); err != nil || family != "" {
			t.Errorf("revoking unknown token %q: %q, %v (RFC 7009 wants success, no family)", junk, family, err)
		}
	}
	for _, junk := range []string{"", "tgr_", "tgr_" + enc(make([]byte, 31)), "tgr_" + enc(make([]byte, 32)) + "=", "tgr_" + enc(make([]byte, 32)) + "\n", "TGR_" + enc(make([]byte, 32))} {
		_, _, err := r.Rotate(ctx, junk)
		wantUnauthorized(t, err)
	}
}

// TestRevocationFromStore is row 23 for access tokens across a restart:
// revocations and user marks stored in SQLite are loaded into the
// denylist, and refuse tokens without a store round trip per request.
func TestRevocationFromStore(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	f := setup(t, setupOpts{})
	alice, bob, carol := sqliteUser(t, db, "alice"), sqliteUser(t, db, "bob"), sqliteUser(t, db, "carol")
	issue := func(u *tollgate.User) string {
		return f.mustIssue(t, token.AccessClaims{Subject: u.ID, TenantID: u.TenantID})
	}
	aliceTok, bobTok, carolTok := issue(alice), issue(bob), issue(carol)
	p, err := f.verifier.Verify(ctx, aliceTok)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Revocations().Revoke(ctx, &tollgate.Revocation{Issuer: p.Issuer, JTI: p.JTI, ExpiresAt: p.Expires}); err != nil {
		t.Fatal(err)
	}
	disabled := true
	if _, err := db.Users().UpdateUser(ctx, bob.ID, tollgate.UserUpdate{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	after := f.clock.Now().Add(time.Second)
	if _, err := db.Users().UpdateUser(ctx, carol.ID, tollgate.UserUpdate{TokensValidAfter: &after}); err != nil {
		t.Fatal(err)
	}
	if err := f.deny.Load(ctx, db.Revocations(), db.Users(), nil); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"revoked_jti": aliceTok, "disabled_user": bobTok, "tokens_before_mark": carolTok} {
		t.Run(name, func(t *testing.T) {
			_, err := f.verifier.Verify(ctx, tok)
			wantUnauthorized(t, err)
		})
	}
	t.Run("fresh_login_after_mark", func(t *testing.T) {
		f.clock.Add(2 * time.Second)
		if _, err := f.verifier.Verify(ctx, issue(carol)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("enable_user", func(t *testing.T) {
		f.deny.EnableUser(bob.ID)
		if _, err := f.verifier.Verify(ctx, bobTok); err != nil {
			t.Fatal(err)
		}
	})
}

package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// refreshHash returns the stored form of a refresh token secret.
func refreshHash(secret string) []byte { h := sha256.Sum256([]byte(secret)); return h[:] }

// newRefresh returns a token of family fam issued at at(0) that idles out
// after an hour, in a family that ends after a day.
func newRefresh(secret, fam, userID string) *tollgate.RefreshToken {
	return &tollgate.RefreshToken{
		Hash: refreshHash(secret), FamilyID: fam, UserID: userID, Scopes: []string{"infer:text", "jobs"},
		IssuedAt: at(0), ExpiresAt: at(time.Hour), FamilyExpiresAt: at(24 * time.Hour),
	}
}

func mustRefresh(t *testing.T, s tollgate.Store, tok *tollgate.RefreshToken) {
	t.Helper()
	if err := s.RefreshTokens().CreateRefreshToken(t.Context(), tok); err != nil {
		t.Fatalf("CreateRefreshToken: %v", err)
	}
}

func testRefreshTokens(t *testing.T, open func(t *testing.T) tollgate.Store) {
	t.Run("Sessions", func(t *testing.T) { testSessions(t, open(t)) })
	t.Run("CreateAndGet", func(t *testing.T) {
		s := open(t)
		tok := newRefresh("r1", "fam1", "usr_1")
		mustRefresh(t, s, tok)
		got, err := s.RefreshTokens().RefreshToken(t.Context(), refreshHash("r1"))
		if err != nil {
			t.Fatalf("RefreshToken: %v", err)
		}
		if !bytes.Equal(got.Hash, tok.Hash) || got.FamilyID != "fam1" || got.UserID != "usr_1" ||
			!slices.Equal(got.Scopes, tok.Scopes) || got.Revoked {
			t.Errorf("RefreshToken = %+v, want %+v", got, tok)
		}
		wantTime(t, "IssuedAt", got.IssuedAt, at(0))
		wantTime(t, "ExpiresAt", got.ExpiresAt, at(time.Hour))
		wantTime(t, "FamilyExpiresAt", got.FamilyExpiresAt, at(24*time.Hour))
		wantTime(t, "UsedAt", got.UsedAt, time.Time{})
	})
	t.Run("Errors", func(t *testing.T) {
		s := open(t)
		mustRefresh(t, s, newRefresh("r1", "fam1", "usr_1"))
		err := s.RefreshTokens().CreateRefreshToken(t.Context(), newRefresh("r1", "fam2", "usr_1"))
		wantCode(t, "duplicate hash", err, tollgate.EConflict)
		_, err = s.RefreshTokens().RefreshToken(t.Context(), refreshHash("nope"))
		wantCode(t, "RefreshToken", err, tollgate.ENotFound)
		wantCode(t, "RevokeRefreshFamily", s.RefreshTokens().RevokeRefreshFamily(t.Context(), "nope"), tollgate.ENotFound)
		_, err = s.RefreshTokens().ConsumeRefreshToken(t.Context(), refreshHash("nope"), at(0))
		wantCode(t, "Consume unknown", err, tollgate.EUnauthorized)
		if errors.Is(err, tollgate.ErrRefreshReused) {
			t.Errorf("Consume unknown = ErrRefreshReused, want a plain EUnauthorized")
		}
	})
	t.Run("Rotation", func(t *testing.T) {
		s := open(t)
		mustRefresh(t, s, newRefresh("r1", "fam1", "usr_1"))
		got, err := s.RefreshTokens().ConsumeRefreshToken(t.Context(), refreshHash("r1"), at(time.Minute))
		if err != nil {
			t.Fatalf("ConsumeRefreshToken: %v", err)
		}
		if got.FamilyID != "fam1" || got.UserID != "usr_1" || !slices.Equal(got.Scopes, []string{"infer:text", "jobs"}) {
			t.Errorf("consumed %+v", got)
		}
		wantTime(t, "UsedAt", got.UsedAt, at(time.Minute))
		wantTime(t, "FamilyExpiresAt", got.FamilyExpiresAt, at(24*time.Hour))
		stored, err := s.RefreshTokens().RefreshToken(t.Context(), refreshHash("r1"))
		if err != nil {
			t.Fatalf("RefreshToken: %v", err)
		}
		wantTime(t, "stored UsedAt", stored.UsedAt, at(time.Minute))

		// The successor, issued with a later family expiry, is consumable
		// but cannot extend the family.
		next := newRefresh("r2", "fam1", "usr_1")
		next.IssuedAt, next.ExpiresAt, next.FamilyExpiresAt = at(time.Minute), at(time.Hour+time.Minute), at(48*time.Hour)
		mustRefresh(t, s, next)
		got, err = s.RefreshTokens().ConsumeRefreshToken(t.Context(), refreshHash("r2"), at(2*time.Minute))
		if err != nil {
			t.Fatalf("ConsumeRefreshToken(successor): %v", err)
		}
		wantTime(t, "successor FamilyExpiresAt", got.FamilyExpiresAt, at(24*time.Hour))
	})
	t.Run("ReuseRevokesFamily", func(t *testing.T) {
		s := open(t)
		mustRefresh(t, s, newRefresh("r1", "fam1", "usr_1"))
		mustRefresh(t, s, newRefresh("other", "fam2", "usr_1"))
		if _, err := s.RefreshTokens().ConsumeRefreshToken(t.Context(), refreshHash("r1"), at(time.Minute)); err != nil {
			t.Fatalf("ConsumeRefreshToken: %v", err)
		}
		mustRefresh(t, s, newRefresh("r2", "fam1", "usr_1")) // the rotated successor
		_, err := s.RefreshTokens().ConsumeRefreshToken(t.Context(), refreshHash("r1"), at(2*time.Minute))
		if !errors.Is(err, tollgate.ErrRefreshReused) {
			t.Fatalf("second Consume = %v, want ErrRefreshReused", err)
		}
		wantCode(t, "second Consume", err, tollgate.EUnauthorized)
		_, err = s.RefreshTokens().ConsumeRefreshToken(t.Context(), refreshHash("r2"), at(3*time.Minute))
		wantCode(t, "Consume sibling after reuse", err, tollgate.EUnauthorized)
		sib, err := s.RefreshTokens().RefreshToken(t.Context(), refreshHash("r2"))
		if err != nil || !sib.Revoked || !sib.UsedAt.IsZero() {
			t.Errorf("sibling = %+v, %v; want revoked and unused", sib, err)
		}
		// Another family of the same user is untouched.
		if _, err := s.RefreshTokens().ConsumeRefreshToken(t.Context(), refreshHash("other"), at(3*time.Minute)); err != nil {
			t.Errorf("Consume other family: %v", err)
		}
		// A token created into the revoked family later is dead as well.
		mustRefresh(t, s, newRefresh("r3", "fam1", "usr_1"))
		_, err = s.RefreshTokens().ConsumeRefreshToken(t.Context(), refreshHash("r3"), at(4*time.Minute))
		wantCode(t, "Consume token created into a revoked family", err, tollgate.EUnauthorized)
	})
	t.Run("Expiry", testRefreshExpiry(open))
	t.Run("ConcurrentConsume", func(t *testing.T) {
		s := open(t)
		// Several rounds, so that later rounds race on warm connections.
		for round := range 5 {
			secret := fmt.Sprintf("r%d", round)
			mustRefresh(t, s, newRefresh(secret, fmt.Sprintf("fam%d", round), "usr_1"))
			const n = 20
			var wg sync.WaitGroup
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					_, errs[i] = s.RefreshTokens().ConsumeRefreshToken(t.Context(), refreshHash(secret), at(time.Minute))
				})
			}
			close(start)
			wg.Wait()
			wins := 0
			for _, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, tollgate.ErrRefreshReused):
					t.Errorf("round %d: losing Consume = %v, want ErrRefreshReused", round, err)
				}
			}
			if wins != 1 {
				t.Fatalf("round %d: %d of %d concurrent consumes won, want exactly 1", round, wins, n)
			}
			got, err := s.RefreshTokens().RefreshToken(t.Context(), refreshHash(secret))
			if err != nil || !got.Revoked {
				t.Errorf("round %d: token after replays = %+v, %v; want its family revoked", round, got, err)
			}
		}
	})
	t.Run("RevokeFamily", func(t *testing.T) {
		s := open(t)
		mustRefresh(t, s, newRefresh("a1", "famA", "usr_1"))
		mustRefresh(t, s, newRefresh("a2", "famA", "usr_1"))
		mustRefresh(t, s, newRefresh("b1", "famB", "usr_1"))
		if err := s.RefreshTokens().RevokeRefreshFamily(t.Context(), "famA"); err != nil {
			t.Fatalf("RevokeRefreshFamily: %v", err)
		}
		for _, secret := range []string{"a1", "a2"} {
			_, err := s.RefreshTokens().ConsumeRefreshToken(t.Context(), refreshHash(secret), at(time.Minute))
			wantCode(t, "Consume "+secret, err, tollgate.EUnauthorized)
		}
		if _, err := s.RefreshTokens().ConsumeRefreshToken(t.Context(), refreshHash("b1"), at(time.Minute)); err != nil {
			t.Errorf("Consume b1 of another family: %v", err)
		}
	})
	t.Run("RevokeUser", func(t *testing.T) {
		s := open(t)
		mustRefresh(t, s, newRefresh("a1", "famA", "usr_1"))
		mustRefresh(t, s, newRefresh("b1", "famB", "usr_1"))
		mustRefresh(t, s, newRefresh("c1", "famC", "usr_2"))
		if err := s.RefreshTokens().RevokeUserRefreshTokens(t.Context(), "usr_1"); err != nil {
			t.Fatalf("RevokeUserRefreshTokens: %v", err)
		}
		for _, secret := range []string{"a1", "b1"} {
			_, err := s.RefreshTokens().ConsumeRefreshToken(t.Context(), refreshHash(secret), at(time.Minute))
			wantCode(t, "Consume "+secret, err, tollgate.EUnauthorized)
		}
		if _, err := s.RefreshTokens().ConsumeRefreshToken(t.Context(), refreshHash("c1"), at(time.Minute)); err != nil {
			t.Errorf("Consume c1 of another user: %v", err)
		}
		if err := s.RefreshTokens().RevokeUserRefreshTokens(t.Context(), "usr_none"); err != nil {
			t.Errorf("RevokeUserRefreshTokens(user without tokens) = %v, want nil", err)
		}
	})
	t.Run("DeleteExpired", func(t *testing.T) {
		s := open(t)
		short := newRefresh("s1", "famShort", "usr_1")
		short.FamilyExpiresAt = at(time.Hour)
		mustRefresh(t, s, short)
		short2 := newRefresh("s2", "famShort", "usr_1")
		short2.FamilyExpiresAt = at(time.Hour)
		mustRefresh(t, s, short2)
		mustRefresh(t, s, newRefresh("l1", "famLong", "usr_1")) // family ends after a day
		n, err := s.RefreshTokens().DeleteExpiredRefreshTokens(t.Context(), at(2*time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("DeleteExpiredRefreshTokens = %d, %v; want 2", n, err)
		}
		for _, secret := range []string{"s1", "s2"} {
			_, err := s.RefreshTokens().RefreshToken(t.Context(), refreshHash(secret))
			wantCode(t, "RefreshToken "+secret, err, tollgate.ENotFound)
		}
		if _, err := s.RefreshTokens().RefreshToken(t.Context(), refreshHash("l1")); err != nil {
			t.Errorf("RefreshToken(l1) of a live family: %v", err)
		}
		if n, err := s.RefreshTokens().DeleteExpiredRefreshTokens(t.Context(), at(2*time.Hour)); err != nil || n != 0 {
			t.Errorf("second DeleteExpiredRefreshTokens = %d, %v; want 0", n, err)
		}
	})
}

func testRefreshExpiry(open func(t *testing.T) tollgate.Store) func(t *testing.T) {
	return func(t *testing.T) {
		// newRefresh: idle expiry at(1h), family expiry at(24h).
		tests := []struct {
			name   string
			idle   time.Duration // ExpiresAt offset
			now    time.Duration
			wantOK bool
		}{
			{"BeforeIdleExpiry", time.Hour, time.Hour - time.Microsecond, true},
			{"AtIdleExpiry", time.Hour, time.Hour, false},
			{"AfterIdleExpiry", time.Hour, 2 * time.Hour, false},
			{"BeforeFamilyExpiry", 48 * time.Hour, 24*time.Hour - time.Second, true},
			{"AfterFamilyExpiry", 48 * time.Hour, 24*time.Hour + time.Second, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := open(t)
				tok := newRefresh("r1", "fam1", "usr_1")
				tok.ExpiresAt = at(tt.idle)
				mustRefresh(t, s, tok)
				_, err := s.RefreshTokens().ConsumeRefreshToken(t.Context(), refreshHash("r1"), at(tt.now))
				if tt.wantOK {
					if err != nil {
						t.Fatalf("ConsumeRefreshToken: %v", err)
					}
					return
				}
				wantCode(t, "ConsumeRefreshToken", err, tollgate.EUnauthorized)
				if errors.Is(err, tollgate.ErrRefreshReused) {
					t.Errorf("expired token reported as reused")
				}
				// A refused token is not marked used.
				got, err := s.RefreshTokens().RefreshToken(t.Context(), refreshHash("r1"))
				if err != nil || !got.UsedAt.IsZero() || got.Revoked {
					t.Errorf("after refusal %+v, %v; want unused, not revoked", got, err)
				}
			})
		}
	}
}

// testSessions lists a user's live families at at(40m): a rotated one and
// a newer one, not those revoked, idle, rotated to nothing, past their
// absolute expiry or of another user.
func testSessions(t *testing.T, s tollgate.Store) {
	ctx := t.Context()
	rts := s.RefreshTokens()
	mustRefresh(t, s, newRefresh("r1", "fam1", "usr_1"))
	if _, err := rts.ConsumeRefreshToken(ctx, refreshHash("r1"), at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	next := newRefresh("r1b", "fam1", "usr_1")
	next.IssuedAt, next.ExpiresAt = at(time.Minute), at(61*time.Minute)
	mustRefresh(t, s, next)
	newer := newRefresh("r2", "fam2", "usr_1")
	newer.IssuedAt, newer.ExpiresAt = at(10*time.Minute), at(70*time.Minute)
	mustRefresh(t, s, newer)
	mustRefresh(t, s, newRefresh("r3", "fam3", "usr_1"))
	if err := rts.RevokeRefreshFamily(ctx, "fam3"); err != nil {
		t.Fatal(err)
	}
	idle := newRefresh("r4", "fam4", "usr_1")
	idle.ExpiresAt = at(30 * time.Minute)
	mustRefresh(t, s, idle)
	mustRefresh(t, s, newRefresh("r5", "fam5", "usr_1"))
	if _, err := rts.ConsumeRefreshToken(ctx, refreshHash("r5"), at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	mustRefresh(t, s, newRefresh("r6", "fam6", "usr_2"))
	ended := newRefresh("r7", "fam7", "usr_1")
	ended.FamilyExpiresAt = at(35 * time.Minute)
	mustRefresh(t, s, ended)

	got, err := rts.Sessions(ctx, "usr_1", at(40*time.Minute))
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	var ids []string
	for _, ss := range got {
		ids = append(ids, ss.FamilyID)
	}
	if want := []string{"fam2", "fam1"}; !slices.Equal(ids, want) {
		t.Fatalf("Sessions = %v, want %v", ids, want)
	}
	if got[1].UserID != "usr_1" {
		t.Errorf("UserID = %q", got[1].UserID)
	}
	wantTime(t, "CreatedAt", got[1].CreatedAt, at(0))
	wantTime(t, "LastUsed", got[1].LastUsed, at(time.Minute))
	wantTime(t, "ExpiresAt", got[1].ExpiresAt, at(24*time.Hour))
	if none, err := rts.Sessions(ctx, "usr_nobody", at(0)); err != nil || len(none) != 0 {
		t.Errorf("Sessions of a user without any = %v, %v", none, err)
	}
}

package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

func testRevocations(t *testing.T, open func(t *testing.T) tollgate.Store) {
	const iss = "https://gw.example.com"
	revoke := func(t *testing.T, s tollgate.Store, r *tollgate.Revocation) {
		t.Helper()
		if err := s.Revocations().Revoke(t.Context(), r); err != nil {
			t.Fatalf("Revoke(%s): %v", r.JTI, err)
		}
	}
	t.Run("RevokeAndCheck", func(t *testing.T) {
		s := open(t)
		r := &tollgate.Revocation{Issuer: iss, JTI: "j1", ExpiresAt: at(time.Hour)}
		revoke(t, s, r)
		revoke(t, s, &tollgate.Revocation{Issuer: iss, JTI: "j1", ExpiresAt: at(time.Hour)}) // twice is fine
		tests := []struct {
			issuer, jti string
			want        bool
		}{
			{iss, "j1", true},
			{iss, "j2", false},
			{"https://idp.example.com", "j1", false},
		}
		for _, tt := range tests {
			got, err := s.Revocations().Revoked(t.Context(), tt.issuer, tt.jti)
			if err != nil || got != tt.want {
				t.Errorf("Revoked(%s, %s) = %v, %v; want %v", tt.issuer, tt.jti, got, err, tt.want)
			}
		}
	})
	t.Run("RevokeAgainKeepsLaterExpiry", func(t *testing.T) {
		s := open(t)
		revoke(t, s, &tollgate.Revocation{Issuer: iss, JTI: "j1", ExpiresAt: at(2 * time.Hour)})
		revoke(t, s, &tollgate.Revocation{Issuer: iss, JTI: "j1", ExpiresAt: at(time.Hour)})
		list, err := s.Revocations().Revocations(t.Context(), at(90*time.Minute))
		if err != nil || len(list) != 1 {
			t.Fatalf("Revocations = %v, %v; want j1", list, err)
		}
		wantTime(t, "ExpiresAt", list[0].ExpiresAt, at(2*time.Hour))
	})
	t.Run("ListAndDeleteExpired", func(t *testing.T) {
		s := open(t)
		revoke(t, s, &tollgate.Revocation{Issuer: iss, JTI: "gone", ExpiresAt: at(time.Minute)})
		revoke(t, s, &tollgate.Revocation{Issuer: iss, JTI: "later", ExpiresAt: at(2 * time.Hour), CreatedAt: at(0)})
		revoke(t, s, &tollgate.Revocation{Issuer: iss, JTI: "soon", ExpiresAt: at(time.Hour), CreatedAt: at(0)})

		list, err := s.Revocations().Revocations(t.Context(), at(30*time.Minute))
		if err != nil {
			t.Fatalf("Revocations: %v", err)
		}
		var jtis []string
		for _, r := range list {
			jtis = append(jtis, r.JTI)
			if r.Issuer != iss {
				t.Errorf("Issuer = %q, want %q", r.Issuer, iss)
			}
			wantTime(t, "CreatedAt", r.CreatedAt, at(0))
		}
		slices.Sort(jtis)
		if want := []string{"later", "soon"}; !slices.Equal(jtis, want) {
			t.Errorf("Revocations(after 30m) = %v, want %v", jtis, want)
		}
		for _, r := range list {
			if r.JTI == "soon" {
				wantTime(t, "ExpiresAt", r.ExpiresAt, at(time.Hour))
			}
		}

		n, err := s.Revocations().DeleteExpiredRevocations(t.Context(), at(90*time.Minute))
		if err != nil || n != 2 {
			t.Fatalf("DeleteExpiredRevocations = %d, %v; want 2", n, err)
		}
		for jti, want := range map[string]bool{"gone": false, "soon": false, "later": true} {
			got, err := s.Revocations().Revoked(t.Context(), iss, jti)
			if err != nil || got != want {
				t.Errorf("Revoked(%s) after cleanup = %v, %v; want %v", jti, got, err, want)
			}
		}
	})
}

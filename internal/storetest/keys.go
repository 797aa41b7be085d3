package storetest

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

func testAPIKeys(t *testing.T, open func(t *testing.T) tollgate.Store) {
	setup := func(t *testing.T) (tollgate.Store, *tollgate.User) {
		s := open(t)
		MustTenant(t, s, "acme", "Acme")
		return s, MustUser(t, s, "acme", "alice", "user")
	}
	hash := func(secret string) []byte { h := sha256.Sum256([]byte(secret)); return h[:] }

	t.Run("CreateAndGet", func(t *testing.T) {
		s, u := setup(t)
		k := &tollgate.APIKey{ID: "tg_abc123", UserID: u.ID, Name: "laptop", Hash: hash("tg_abc123.secret"), CreatedAt: at(0)}
		if err := s.APIKeys().CreateAPIKey(t.Context(), k); err != nil {
			t.Fatalf("CreateAPIKey: %v", err)
		}
		got, err := s.APIKeys().APIKey(t.Context(), "tg_abc123")
		if err != nil {
			t.Fatalf("APIKey: %v", err)
		}
		if got.ID != k.ID || got.UserID != u.ID || got.Name != "laptop" || !bytes.Equal(got.Hash, k.Hash) || got.Revoked {
			t.Errorf("APIKey = %+v, want %+v", got, k)
		}
		wantTime(t, "CreatedAt", got.CreatedAt, at(0))
		wantTime(t, "LastUsedAt", got.LastUsedAt, time.Time{})
	})
	t.Run("CreateErrors", func(t *testing.T) {
		s, u := setup(t)
		if err := s.APIKeys().CreateAPIKey(t.Context(), &tollgate.APIKey{ID: "k1", UserID: u.ID, Hash: hash("a")}); err != nil {
			t.Fatalf("CreateAPIKey: %v", err)
		}
		err := s.APIKeys().CreateAPIKey(t.Context(), &tollgate.APIKey{ID: "k1", UserID: u.ID, Hash: hash("b")})
		wantCode(t, "duplicate ID", err, tollgate.EConflict)
		err = s.APIKeys().CreateAPIKey(t.Context(), &tollgate.APIKey{ID: "k2", UserID: "usr_nope", Hash: hash("c")})
		wantCode(t, "unknown user", err, tollgate.ENotFound)
		got, err := s.APIKeys().APIKey(t.Context(), "k1")
		if err != nil || !bytes.Equal(got.Hash, hash("a")) {
			t.Errorf("APIKey(k1) = %+v, %v; want the first key unchanged", got, err)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		s, _ := setup(t)
		_, err := s.APIKeys().APIKey(t.Context(), "nope")
		wantCode(t, "APIKey", err, tollgate.ENotFound)
		wantCode(t, "RevokeAPIKey", s.APIKeys().RevokeAPIKey(t.Context(), "nope"), tollgate.ENotFound)
		wantCode(t, "TouchAPIKey", s.APIKeys().TouchAPIKey(t.Context(), "nope", at(0)), tollgate.ENotFound)
	})
	t.Run("ListNewestFirst", func(t *testing.T) {
		s, u := setup(t)
		bob := MustUser(t, s, "acme", "bob", "user")
		for _, k := range []*tollgate.APIKey{
			{ID: "old", CreatedAt: at(0)},
			{ID: "new", CreatedAt: at(time.Hour)},
			{ID: "mid", CreatedAt: at(time.Minute)},
		} {
			k.UserID, k.Hash = u.ID, hash(k.ID)
			if err := s.APIKeys().CreateAPIKey(t.Context(), k); err != nil {
				t.Fatalf("CreateAPIKey: %v", err)
			}
		}
		if err := s.APIKeys().CreateAPIKey(t.Context(), &tollgate.APIKey{ID: "bobs", UserID: bob.ID, Hash: hash("bobs")}); err != nil {
			t.Fatalf("CreateAPIKey: %v", err)
		}
		keys, err := s.APIKeys().APIKeys(t.Context(), u.ID)
		if err != nil {
			t.Fatalf("APIKeys: %v", err)
		}
		var ids []string
		for _, k := range keys {
			ids = append(ids, k.ID)
		}
		if want := []string{"new", "mid", "old"}; !slices.Equal(ids, want) {
			t.Errorf("APIKeys = %v, want %v", ids, want)
		}
	})
	t.Run("Revoke", func(t *testing.T) {
		s, u := setup(t)
		for _, id := range []string{"k1", "k2"} {
			if err := s.APIKeys().CreateAPIKey(t.Context(), &tollgate.APIKey{ID: id, UserID: u.ID, Hash: hash(id)}); err != nil {
				t.Fatalf("CreateAPIKey: %v", err)
			}
		}
		for range 2 { // revoking twice is fine
			if err := s.APIKeys().RevokeAPIKey(t.Context(), "k1"); err != nil {
				t.Fatalf("RevokeAPIKey: %v", err)
			}
		}
		got, err := s.APIKeys().APIKey(t.Context(), "k1")
		if err != nil || !got.Revoked {
			t.Errorf("APIKey(k1) after revoke = %+v, %v; want revoked", got, err)
		}
		other, err := s.APIKeys().APIKey(t.Context(), "k2")
		if err != nil || other.Revoked {
			t.Errorf("APIKey(k2) = %+v, %v; want not revoked", other, err)
		}
	})
	t.Run("Touch", func(t *testing.T) {
		s, u := setup(t)
		if err := s.APIKeys().CreateAPIKey(t.Context(), &tollgate.APIKey{ID: "k1", UserID: u.ID, Hash: hash("k1")}); err != nil {
			t.Fatalf("CreateAPIKey: %v", err)
		}
		steps := []struct {
			touch, want time.Time
		}{
			{at(time.Minute), at(time.Minute)},
			{at(time.Hour), at(time.Hour)},
			{at(time.Second), at(time.Hour)}, // a late, older touch does not go back
		}
		for _, st := range steps {
			if err := s.APIKeys().TouchAPIKey(t.Context(), "k1", st.touch); err != nil {
				t.Fatalf("TouchAPIKey: %v", err)
			}
			got, err := s.APIKeys().APIKey(t.Context(), "k1")
			if err != nil {
				t.Fatalf("APIKey: %v", err)
			}
			wantTime(t, "LastUsedAt", got.LastUsedAt, st.want)
		}
	})
}

func testSigningKeys(t *testing.T, open func(t *testing.T) tollgate.Store) {
	newKey := func(id, purpose string, created time.Time) *tollgate.SigningKey {
		return &tollgate.SigningKey{
			ID: id, Algorithm: "ES256", Purpose: purpose,
			PrivateKey: []byte("private-" + id), Encrypted: true, PublicKey: []byte("public-" + id),
			State: tollgate.KeyNext, CreatedAt: created, ActivateAt: created.Add(time.Hour),
		}
	}
	ids := func(t *testing.T, s tollgate.Store, purpose string) []string {
		t.Helper()
		keys, err := s.SigningKeys().SigningKeys(t.Context(), purpose)
		if err != nil {
			t.Fatalf("SigningKeys: %v", err)
		}
		var out []string
		for _, k := range keys {
			out = append(out, k.ID)
		}
		return out
	}

	t.Run("Lifecycle", func(t *testing.T) {
		s := open(t)
		k := newKey("kid1", "access", at(0))
		if err := s.SigningKeys().CreateSigningKey(t.Context(), k); err != nil {
			t.Fatalf("CreateSigningKey: %v", err)
		}
		keys, err := s.SigningKeys().SigningKeys(t.Context(), "access")
		if err != nil || len(keys) != 1 {
			t.Fatalf("SigningKeys = %v, %v; want one key", keys, err)
		}
		got := keys[0]
		if got.ID != "kid1" || got.Algorithm != "ES256" || got.Purpose != "access" || !got.Encrypted ||
			!bytes.Equal(got.PrivateKey, k.PrivateKey) || !bytes.Equal(got.PublicKey, k.PublicKey) ||
			got.State != tollgate.KeyNext {
			t.Errorf("SigningKeys[0] = %+v, want %+v", got, k)
		}
		wantTime(t, "CreatedAt", got.CreatedAt, at(0))
		wantTime(t, "ActivateAt", got.ActivateAt, at(time.Hour))
		wantTime(t, "RetiredAt", got.RetiredAt, time.Time{})

		// next → active → retired, as a rotation does.
		for _, st := range []struct {
			state          string
			retired, until time.Time
		}{
			{tollgate.KeyActive, time.Time{}, time.Time{}},
			{tollgate.KeyRetired, at(2 * time.Hour), at(3 * time.Hour)},
		} {
			k.State, k.RetiredAt, k.RemoveAfter = st.state, st.retired, st.until
			if err := s.SigningKeys().UpdateSigningKey(t.Context(), k); err != nil {
				t.Fatalf("UpdateSigningKey(%s): %v", st.state, err)
			}
			keys, err := s.SigningKeys().SigningKeys(t.Context(), "access")
			if err != nil || len(keys) != 1 {
				t.Fatalf("SigningKeys = %v, %v; want one key", keys, err)
			}
			if keys[0].State != st.state {
				t.Errorf("State = %q, want %q", keys[0].State, st.state)
			}
			wantTime(t, "RetiredAt", keys[0].RetiredAt, st.retired)
			wantTime(t, "RemoveAfter", keys[0].RemoveAfter, st.until)
			if !bytes.Equal(keys[0].PrivateKey, k.PrivateKey) {
				t.Errorf("update changed the private key")
			}
		}
		if err := s.SigningKeys().DeleteSigningKey(t.Context(), "kid1"); err != nil {
			t.Fatalf("DeleteSigningKey: %v", err)
		}
		if got := ids(t, s, "access"); len(got) != 0 {
			t.Errorf("SigningKeys after delete = %v, want none", got)
		}
	})
	t.Run("ListByPurposeOldestFirst", func(t *testing.T) {
		s := open(t)
		for _, k := range []*tollgate.SigningKey{
			newKey("b", "access", at(time.Hour)),
			newKey("c", "internal", at(0)),
			newKey("a", "access", at(2*time.Hour)),
			newKey("d", "access", at(0)),
		} {
			if err := s.SigningKeys().CreateSigningKey(t.Context(), k); err != nil {
				t.Fatalf("CreateSigningKey: %v", err)
			}
		}
		if got, want := ids(t, s, "access"), []string{"d", "b", "a"}; !slices.Equal(got, want) {
			t.Errorf("SigningKeys(access) = %v, want %v", got, want)
		}
		if got, want := ids(t, s, "internal"), []string{"c"}; !slices.Equal(got, want) {
			t.Errorf("SigningKeys(internal) = %v, want %v", got, want)
		}
	})
	t.Run("Errors", func(t *testing.T) {
		s := open(t)
		if err := s.SigningKeys().CreateSigningKey(t.Context(), newKey("kid1", "access", at(0))); err != nil {
			t.Fatalf("CreateSigningKey: %v", err)
		}
		wantCode(t, "duplicate", s.SigningKeys().CreateSigningKey(t.Context(), newKey("kid1", "internal", at(0))), tollgate.EConflict)
		wantCode(t, "update missing", s.SigningKeys().UpdateSigningKey(t.Context(), newKey("nope", "access", at(0))), tollgate.ENotFound)
		wantCode(t, "delete missing", s.SigningKeys().DeleteSigningKey(t.Context(), "nope"), tollgate.ENotFound)
	})
}

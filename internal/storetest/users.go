package storetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

func testTenants(t *testing.T, open func(t *testing.T) tollgate.Store) {
	t.Run("CreateSetsIDAndCreatedAt", func(t *testing.T) {
		s := open(t)
		before := time.Now().Add(-time.Second)
		ten := &tollgate.Tenant{Name: "Acme Corp"}
		if err := s.Tenants().CreateTenant(t.Context(), ten); err != nil {
			t.Fatalf("CreateTenant: %v", err)
		}
		if !strings.HasPrefix(ten.ID, "ten_") || len(ten.ID) < 12 {
			t.Errorf("ID = %q, want ten_ and random characters", ten.ID)
		}
		if ten.CreatedAt.Before(before) {
			t.Errorf("CreatedAt = %v, want about now", ten.CreatedAt)
		}
		for _, key := range []string{ten.ID, ten.Name} {
			got, err := s.Tenants().Tenant(t.Context(), key)
			if err != nil {
				t.Fatalf("Tenant(%q): %v", key, err)
			}
			if got.ID != ten.ID || got.Name != ten.Name {
				t.Errorf("Tenant(%q) = %+v, want %+v", key, got, ten)
			}
			wantTime(t, "CreatedAt", got.CreatedAt, ten.CreatedAt)
		}
	})
	t.Run("KeepsGivenIDAndTime", func(t *testing.T) {
		s := open(t)
		ten := &tollgate.Tenant{ID: "acme", Name: "Acme", CreatedAt: at(0)}
		if err := s.Tenants().CreateTenant(t.Context(), ten); err != nil {
			t.Fatalf("CreateTenant: %v", err)
		}
		got, err := s.Tenants().Tenant(t.Context(), "acme")
		if err != nil {
			t.Fatalf("Tenant: %v", err)
		}
		if got.ID != "acme" {
			t.Errorf("ID = %q, want acme", got.ID)
		}
		wantTime(t, "CreatedAt", got.CreatedAt, at(0))
	})
	t.Run("CreateErrors", func(t *testing.T) {
		s := open(t)
		MustTenant(t, s, "acme", "Acme")
		tests := []struct {
			name   string
			tenant tollgate.Tenant
			code   string
		}{
			{"EmptyName", tollgate.Tenant{ID: "x"}, tollgate.EInvalid},
			{"DuplicateID", tollgate.Tenant{ID: "acme", Name: "Other"}, tollgate.EConflict},
			{"DuplicateName", tollgate.Tenant{ID: "other", Name: "Acme"}, tollgate.EConflict},
			{"DuplicateNameNoID", tollgate.Tenant{Name: "Acme"}, tollgate.EConflict},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := s.Tenants().CreateTenant(t.Context(), &tt.tenant)
				wantCode(t, "CreateTenant", err, tt.code)
			})
		}
		all, err := s.Tenants().Tenants(t.Context())
		if err != nil || len(all) != 1 {
			t.Errorf("Tenants after failed creates = %d tenants (err %v), want 1", len(all), err)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		s := open(t)
		_, err := s.Tenants().Tenant(t.Context(), "nope")
		wantCode(t, "Tenant", err, tollgate.ENotFound)
	})
	t.Run("LookupPrefersID", func(t *testing.T) {
		s := open(t)
		MustTenant(t, s, "t1", "beta")
		MustTenant(t, s, "beta", "alpha")
		got, err := s.Tenants().Tenant(t.Context(), "beta")
		if err != nil {
			t.Fatalf("Tenant: %v", err)
		}
		if got.ID != "beta" {
			t.Errorf("Tenant(beta) = %q, want the tenant whose ID is beta", got.ID)
		}
	})
	t.Run("ListOrderedByName", func(t *testing.T) {
		s := open(t)
		if got, err := s.Tenants().Tenants(t.Context()); err != nil || len(got) != 0 {
			t.Fatalf("Tenants on empty store = %v, %v; want none", got, err)
		}
		MustTenant(t, s, "c", "charlie")
		MustTenant(t, s, "a", "alpha")
		MustTenant(t, s, "b", "bravo")
		got, err := s.Tenants().Tenants(t.Context())
		if err != nil {
			t.Fatalf("Tenants: %v", err)
		}
		var names []string
		for _, ten := range got {
			names = append(names, ten.Name)
		}
		if want := []string{"alpha", "bravo", "charlie"}; !slices.Equal(names, want) {
			t.Errorf("Tenants = %v, want %v", names, want)
		}
	})
	t.Run("Update", func(t *testing.T) {
		s := open(t)
		MustTenant(t, s, "acme", "Acme")
		MustTenant(t, s, "globex", "Globex")
		before := time.Now().Add(-time.Second)
		yes, name := true, "Acme Inc"
		got, err := s.Tenants().UpdateTenant(t.Context(), "acme", tollgate.TenantUpdate{Disabled: &yes})
		if err != nil || !got.Disabled || got.Name != "Acme" || got.UpdatedAt.Before(before) {
			t.Fatalf("UpdateTenant(disable) = %+v, %v; want disabled, name kept, UpdatedAt about now", got, err)
		}
		if got, err = s.Tenants().UpdateTenant(t.Context(), "acme", tollgate.TenantUpdate{Name: &name}); err != nil || !got.Disabled || got.Name != name {
			t.Fatalf("UpdateTenant(rename) = %+v, %v; want renamed and still disabled", got, err)
		}
		stored, err := s.Tenants().Tenant(t.Context(), name)
		if err != nil || stored.ID != "acme" || !stored.Disabled {
			t.Fatalf("Tenant(%q) = %+v, %v; want acme, disabled", name, stored, err)
		}
		wantTime(t, "UpdatedAt", stored.UpdatedAt, got.UpdatedAt)
		if other, _ := s.Tenants().Tenant(t.Context(), "globex"); other.Disabled || !other.UpdatedAt.IsZero() {
			t.Errorf("the other tenant changed: %+v", other)
		}
		no := false
		if got, err = s.Tenants().UpdateTenant(t.Context(), "acme", tollgate.TenantUpdate{Disabled: &no}); err != nil || got.Disabled {
			t.Errorf("UpdateTenant(enable) = %+v, %v", got, err)
		}
		empty, taken := "", "Globex"
		_, err = s.Tenants().UpdateTenant(t.Context(), "acme", tollgate.TenantUpdate{Name: &empty})
		wantCode(t, "UpdateTenant(empty name)", err, tollgate.EInvalid)
		_, err = s.Tenants().UpdateTenant(t.Context(), "acme", tollgate.TenantUpdate{Name: &taken})
		wantCode(t, "UpdateTenant(a taken name)", err, tollgate.EConflict)
		_, err = s.Tenants().UpdateTenant(t.Context(), "nope", tollgate.TenantUpdate{Disabled: &yes})
		wantCode(t, "UpdateTenant(absent)", err, tollgate.ENotFound)
		if stored, _ := s.Tenants().Tenant(t.Context(), "acme"); stored.Name != name || stored.Disabled {
			t.Errorf("refused updates changed the tenant: %+v", stored)
		}
	})
}

func testUsers(t *testing.T, open func(t *testing.T) tollgate.Store) {
	t.Run("CreateAndGet", func(t *testing.T) {
		s := open(t)
		MustTenant(t, s, "acme", "Acme")
		u := &tollgate.User{
			Name: "alice", TenantID: "acme", Role: "admin", Plan: "pro",
			PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", Disabled: true,
			TokensValidAfter: at(time.Hour),
		}
		if err := s.Users().CreateUser(t.Context(), u); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		if !strings.HasPrefix(u.ID, "usr_") || len(u.ID) < 12 {
			t.Errorf("ID = %q, want usr_ and random characters", u.ID)
		}
		if u.CreatedAt.IsZero() || u.UpdatedAt.IsZero() {
			t.Errorf("CreatedAt, UpdatedAt = %v, %v; want set", u.CreatedAt, u.UpdatedAt)
		}
		byID, err := s.Users().User(t.Context(), u.ID)
		if err != nil {
			t.Fatalf("User: %v", err)
		}
		byName, err := s.Users().UserByName(t.Context(), "alice")
		if err != nil {
			t.Fatalf("UserByName: %v", err)
		}
		for _, got := range []*tollgate.User{byID, byName} {
			if got.ID != u.ID || got.Name != u.Name || got.TenantID != u.TenantID || got.Role != u.Role ||
				got.Plan != u.Plan || got.PasswordHash != u.PasswordHash || got.Disabled != u.Disabled {
				t.Errorf("got %+v, want %+v", got, u)
			}
			wantTime(t, "TokensValidAfter", got.TokensValidAfter, at(time.Hour))
			wantTime(t, "CreatedAt", got.CreatedAt, u.CreatedAt)
			wantTime(t, "UpdatedAt", got.UpdatedAt, u.UpdatedAt)
		}
	})
	t.Run("KeepsGivenID", func(t *testing.T) {
		s := open(t)
		MustTenant(t, s, "acme", "Acme")
		u := &tollgate.User{ID: "u-42", Name: "alice", TenantID: "acme"}
		if err := s.Users().CreateUser(t.Context(), u); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		if got, err := s.Users().User(t.Context(), "u-42"); err != nil || got.Name != "alice" {
			t.Errorf("User(u-42) = %+v, %v; want alice", got, err)
		}
	})
	t.Run("ZeroTimesStayZero", func(t *testing.T) {
		s := open(t)
		MustTenant(t, s, "acme", "Acme")
		u := MustUser(t, s, "acme", "bob", "user")
		got, err := s.Users().User(t.Context(), u.ID)
		if err != nil {
			t.Fatalf("User: %v", err)
		}
		wantTime(t, "TokensValidAfter", got.TokensValidAfter, time.Time{})
		if got.Disabled || got.Plan != "" || got.PasswordHash != "" {
			t.Errorf("got %+v, want enabled, default plan, no password", got)
		}
	})
	t.Run("CreateErrors", func(t *testing.T) {
		s := open(t)
		MustTenant(t, s, "acme", "Acme")
		taken := MustUser(t, s, "acme", "alice", "user")
		tests := []struct {
			name string
			user tollgate.User
			code string
		}{
			{"EmptyName", tollgate.User{TenantID: "acme"}, tollgate.EInvalid},
			{"NoTenant", tollgate.User{Name: "bob"}, tollgate.EInvalid},
			{"UnknownTenant", tollgate.User{Name: "bob", TenantID: "nope"}, tollgate.ENotFound},
			{"DuplicateName", tollgate.User{Name: "alice", TenantID: "acme"}, tollgate.EConflict},
			{"DuplicateID", tollgate.User{ID: taken.ID, Name: "carol", TenantID: "acme"}, tollgate.EConflict},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				wantCode(t, "CreateUser", s.Users().CreateUser(t.Context(), &tt.user), tt.code)
			})
		}
		all, err := s.Users().Users(t.Context(), "")
		if err != nil || len(all) != 1 {
			t.Errorf("Users after failed creates = %d users (err %v), want 1", len(all), err)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		s := open(t)
		_, err := s.Users().User(t.Context(), "usr_nope")
		wantCode(t, "User", err, tollgate.ENotFound)
		_, err = s.Users().UserByName(t.Context(), "nope")
		wantCode(t, "UserByName", err, tollgate.ENotFound)
		_, err = s.Users().UpdateUser(t.Context(), "usr_nope", tollgate.UserUpdate{Role: ptr("admin")})
		wantCode(t, "UpdateUser", err, tollgate.ENotFound)
	})
	t.Run("ListByTenant", func(t *testing.T) {
		s := open(t)
		MustTenant(t, s, "a", "A")
		MustTenant(t, s, "b", "B")
		MustUser(t, s, "a", "zed", "user")
		MustUser(t, s, "b", "mia", "user")
		MustUser(t, s, "a", "amy", "user")
		names := func(tenantID string) []string {
			us, err := s.Users().Users(t.Context(), tenantID)
			if err != nil {
				t.Fatalf("Users(%q): %v", tenantID, err)
			}
			var out []string
			for _, u := range us {
				out = append(out, u.Name)
			}
			return out
		}
		if got, want := names("a"), []string{"amy", "zed"}; !slices.Equal(got, want) {
			t.Errorf("Users(a) = %v, want %v", got, want)
		}
		if got, want := names(""), []string{"amy", "mia", "zed"}; !slices.Equal(got, want) {
			t.Errorf("Users(all) = %v, want %v", got, want)
		}
		if got := names("nope"); len(got) != 0 {
			t.Errorf("Users(nope) = %v, want none", got)
		}
	})
	t.Run("Update", testUserUpdate(open))
	t.Run("Delete", func(t *testing.T) {
		s := open(t)
		MustTenant(t, s, "acme", "Acme")
		bob := MustUser(t, s, "acme", "bob", "user")
		amy := MustUser(t, s, "acme", "amy", "user")
		for _, u := range []*tollgate.User{bob, amy} {
			if err := s.APIKeys().CreateAPIKey(t.Context(), &tollgate.APIKey{ID: "key_" + u.Name, UserID: u.ID, Hash: refreshHash(u.Name), CreatedAt: at(0)}); err != nil {
				t.Fatalf("CreateAPIKey: %v", err)
			}
			mustRefresh(t, s, newRefresh("r-"+u.Name, "fam-"+u.Name, u.ID))
		}
		if err := s.Users().DeleteUser(t.Context(), bob.ID); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		_, err := s.Users().UserByName(t.Context(), "bob")
		wantCode(t, "UserByName after delete", err, tollgate.ENotFound)
		if keys, err := s.APIKeys().APIKeys(t.Context(), bob.ID); err != nil || len(keys) != 0 {
			t.Errorf("APIKeys of the deleted user = %v, %v; want none", keys, err)
		}
		_, err = s.RefreshTokens().RefreshToken(t.Context(), refreshHash("r-bob"))
		wantCode(t, "RefreshToken of the deleted user", err, tollgate.ENotFound)
		// The other user keeps everything.
		if keys, err := s.APIKeys().APIKeys(t.Context(), amy.ID); err != nil || len(keys) != 1 {
			t.Errorf("APIKeys of another user = %v, %v; want one", keys, err)
		}
		if _, err := s.RefreshTokens().RefreshToken(t.Context(), refreshHash("r-amy")); err != nil {
			t.Errorf("RefreshToken of another user: %v", err)
		}
		wantCode(t, "DeleteUser again", s.Users().DeleteUser(t.Context(), bob.ID), tollgate.ENotFound)
		// The name can be used again.
		MustUser(t, s, "acme", "bob", "user")
	})
}

func testUserUpdate(open func(t *testing.T) tollgate.Store) func(t *testing.T) {
	return func(t *testing.T) {
		tests := []struct {
			name  string
			upd   tollgate.UserUpdate
			check func(u *tollgate.User) bool
		}{
			{"Role", tollgate.UserUpdate{Role: ptr("admin")},
				func(u *tollgate.User) bool { return u.Role == "admin" }},
			{"Plan", tollgate.UserUpdate{Plan: ptr("pro")},
				func(u *tollgate.User) bool { return u.Plan == "pro" }},
			{"PasswordHash", tollgate.UserUpdate{PasswordHash: ptr("$argon2id$new")},
				func(u *tollgate.User) bool { return u.PasswordHash == "$argon2id$new" }},
			{"Disabled", tollgate.UserUpdate{Disabled: ptr(true)},
				func(u *tollgate.User) bool { return u.Disabled }},
			{"TokensValidAfter", tollgate.UserUpdate{TokensValidAfter: ptr(at(time.Minute))},
				func(u *tollgate.User) bool {
					return u.TokensValidAfter.Equal(at(time.Minute).Truncate(time.Microsecond)) &&
						u.TokensValidAfter.Location() == time.UTC
				}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := open(t)
				MustTenant(t, s, "acme", "Acme")
				orig := &tollgate.User{Name: "alice", TenantID: "acme", Role: "user", Plan: "free",
					PasswordHash: "$argon2id$old", CreatedAt: at(-time.Hour)}
				if err := s.Users().CreateUser(t.Context(), orig); err != nil {
					t.Fatalf("CreateUser: %v", err)
				}
				got, err := s.Users().UpdateUser(t.Context(), orig.ID, tt.upd)
				if err != nil {
					t.Fatalf("UpdateUser: %v", err)
				}
				stored, err := s.Users().User(t.Context(), orig.ID)
				if err != nil {
					t.Fatalf("User: %v", err)
				}
				for _, u := range []*tollgate.User{got, stored} {
					if !tt.check(u) {
						t.Errorf("after update %+v", u)
					}
					// Every other field keeps its value.
					want := *orig
					applyUpdate(&want, tt.upd)
					if u.Role != want.Role || u.Plan != want.Plan || u.PasswordHash != want.PasswordHash ||
						u.Disabled != want.Disabled || u.Name != "alice" || u.TenantID != "acme" {
						t.Errorf("after update %+v, want %+v", u, want)
					}
					wantTime(t, "CreatedAt", u.CreatedAt, at(-time.Hour))
					if !u.UpdatedAt.After(orig.UpdatedAt) {
						t.Errorf("UpdatedAt = %v, want after %v", u.UpdatedAt, orig.UpdatedAt)
					}
				}
			})
		}
		t.Run("ClearTokensValidAfter", func(t *testing.T) {
			s := open(t)
			MustTenant(t, s, "acme", "Acme")
			u := MustUser(t, s, "acme", "alice", "user")
			if _, err := s.Users().UpdateUser(t.Context(), u.ID,
				tollgate.UserUpdate{TokensValidAfter: ptr(at(0))}); err != nil {
				t.Fatalf("UpdateUser: %v", err)
			}
			got, err := s.Users().UpdateUser(t.Context(), u.ID, tollgate.UserUpdate{TokensValidAfter: ptr(time.Time{})})
			if err != nil {
				t.Fatalf("UpdateUser: %v", err)
			}
			wantTime(t, "TokensValidAfter", got.TokensValidAfter, time.Time{})
		})
	}
}

// applyUpdate is the expected effect of upd on u, for comparison.
func applyUpdate(u *tollgate.User, upd tollgate.UserUpdate) {
	if upd.Role != nil {
		u.Role = *upd.Role
	}
	if upd.Plan != nil {
		u.Plan = *upd.Plan
	}
	if upd.PasswordHash != nil {
		u.PasswordHash = *upd.PasswordHash
	}
	if upd.Disabled != nil {
		u.Disabled = *upd.Disabled
	}
}

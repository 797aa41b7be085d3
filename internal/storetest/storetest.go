// Package storetest is the conformance suite that every tollgate.Store
// implementation passes: the same behaviour, error codes and time handling
// on SQLite and on PostgreSQL.
//
// Time precision: stores keep times in UTC with microsecond precision. The
// suite feeds times with nanoseconds in a non-UTC zone and expects them
// back truncated to the microsecond (time.Truncate) and in time.UTC.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Run runs the suite. open must return a new, migrated, empty store for
// each call and arrange for it to be closed with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) tollgate.Store) {
	t.Run("Ping", func(t *testing.T) {
		s := open(t)
		if err := s.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	t.Run("Tenants", func(t *testing.T) { testTenants(t, open) })
	t.Run("Users", func(t *testing.T) { testUsers(t, open) })
	t.Run("APIKeys", func(t *testing.T) { testAPIKeys(t, open) })
	t.Run("SigningKeys", func(t *testing.T) { testSigningKeys(t, open) })
	t.Run("RefreshTokens", func(t *testing.T) { testRefreshTokens(t, open) })
	t.Run("Revocations", func(t *testing.T) { testRevocations(t, open) })
}

// at returns a fixed instant plus d. The instant has nanoseconds and a
// non-UTC zone, so that stores must normalise both.
func at(d time.Duration) time.Time {
	return time.Date(2026, time.March, 14, 15, 9, 26, 535897932, time.FixedZone("CET", 3600)).Add(d)
}

// wantTime fails unless got is want truncated to the microsecond, in UTC.
// A zero want expects a zero got.
func wantTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("%s = %v, want zero", what, got)
		}
		return
	}
	w := want.Truncate(time.Microsecond)
	if !got.Equal(w) {
		t.Errorf("%s = %v, want %v", what, got, w.UTC())
	}
	if got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", what, got.Location())
	}
}

// wantCode fails unless err carries the error code code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := tollgate.ErrorCode(err); got != code {
		t.Errorf("%s: error code %q (err %v), want %q", what, got, err, code)
	}
	var te *tollgate.Error
	if err != nil && code != tollgate.EInternal && errors.As(err, &te) && te.Message == "" {
		t.Errorf("%s: error %q has no user-safe message", what, code)
	}
}

// MustTenant creates a tenant with the given ID and name.
func MustTenant(tb testing.TB, s tollgate.Store, id, name string) *tollgate.Tenant {
	tb.Helper()
	ten := &tollgate.Tenant{ID: id, Name: name}
	if err := s.Tenants().CreateTenant(context.Background(), ten); err != nil {
		tb.Fatalf("CreateTenant(%q): %v", name, err)
	}
	return ten
}

// MustUser creates a user of the tenant with the given name and role.
func MustUser(tb testing.TB, s tollgate.Store, tenantID, name, role string) *tollgate.User {
	tb.Helper()
	u := &tollgate.User{Name: name, TenantID: tenantID, Role: role}
	if err := s.Users().CreateUser(context.Background(), u); err != nil {
		tb.Fatalf("CreateUser(%q): %v", name, err)
	}
	return u
}

func ptr[T any](v T) *T { return &v }

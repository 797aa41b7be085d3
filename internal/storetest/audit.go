package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Audit runs the conformance suite of an audit store. open returns a new,
// migrated, empty engine: its store and its audit store, on one database.
func Audit(t *testing.T, open func(t *testing.T) (tollgate.Store, tollgate.AuditStore)) {
	t.Run("AppendAndRead", func(t *testing.T) {
		_, a := open(t)
		e := &tollgate.AuditEvent{At: at(0), Actor: "usr_1", ActorName: "alice", Action: tollgate.AuditLogin,
			Target: "usr_1", Outcome: tollgate.EUnauthorized, Reason: "wrong password", IP: "192.0.2.7", Detail: "d"}
		if err := a.AppendAudit(t.Context(), e); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
		if e.ID == "" {
			t.Fatal("AppendAudit did not set an ID")
		}
		got := mustEvents(t, a, tollgate.AuditQuery{})
		if len(got) != 1 {
			t.Fatalf("AuditEvents = %d events, want 1", len(got))
		}
		g := got[0]
		wantTime(t, "At", g.At, at(0))
		g.At = e.At
		if *g != *e {
			t.Errorf("read back %+v, want %+v", *g, *e)
		}
	})
	t.Run("AtDefaultsToNow", func(t *testing.T) {
		_, a := open(t)
		before := time.Now().Add(-time.Second)
		e := &tollgate.AuditEvent{Action: tollgate.AuditLogin, Outcome: tollgate.AuditOutcomeOK}
		if err := a.AppendAudit(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		if got := mustEvents(t, a, tollgate.AuditQuery{})[0].At; got.Before(before) || got.After(time.Now().Add(time.Second)) {
			t.Errorf("At = %v, want about now", got)
		}
	})
	t.Run("InvalidChangesNothing", func(t *testing.T) {
		_, a := open(t)
		for _, e := range []*tollgate.AuditEvent{{Outcome: "ok"}, {Action: tollgate.AuditLogin}} {
			wantCode(t, "AppendAudit without action or outcome", a.AppendAudit(t.Context(), e), tollgate.EInvalid)
		}
		if got := mustEvents(t, a, tollgate.AuditQuery{}); len(got) != 0 {
			t.Errorf("%d events stored after refused appends", len(got))
		}
		for _, q := range []tollgate.AuditQuery{{Limit: -1}, {Limit: 1001}, {Cursor: "abc"}, {Cursor: "1; DROP"},
			{Action: "user.*.x*"}, {Action: "LOGIN"}, {From: at(time.Hour), To: at(0)}} {
			_, _, err := a.AuditEvents(t.Context(), q)
			wantCode(t, "AuditEvents(bad query)", err, tollgate.EInvalid)
		}
	})
	t.Run("LongFieldsAreShortened", func(t *testing.T) {
		_, a := open(t)
		e := &tollgate.AuditEvent{Action: tollgate.AuditLogin, Outcome: "ok", ActorName: strings.Repeat("n", 5000)}
		if err := a.AppendAudit(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		if got := mustEvents(t, a, tollgate.AuditQuery{})[0].ActorName; len(got) != 512 {
			t.Errorf("stored actor name of %d bytes, want 512", len(got))
		}
	})
	t.Run("NewestFirstInPages", func(t *testing.T) {
		_, a := open(t)
		var ids []string
		for i := range 5 {
			e := &tollgate.AuditEvent{At: at(time.Duration(i) * time.Minute), Action: tollgate.AuditLogin, Outcome: "ok"}
			if err := a.AppendAudit(t.Context(), e); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, e.ID)
		}
		var seen []string
		q := tollgate.AuditQuery{Limit: 2}
		for pages := 0; ; pages++ {
			if pages > 3 {
				t.Fatal("paging does not end")
			}
			page, next, err := a.AuditEvents(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				seen = append(seen, e.ID)
			}
			if next == "" {
				break
			}
			q.Cursor = next
		}
		want := []string{ids[4], ids[3], ids[2], ids[1], ids[0]}
		if strings.Join(seen, ",") != strings.Join(want, ",") {
			t.Errorf("pages gave %v, want %v", seen, want)
		}
	})
	t.Run("Filters", func(t *testing.T) {
		_, a := open(t)
		for _, e := range []*tollgate.AuditEvent{
			{At: at(0), Actor: "usr_a", ActorName: "alice", Action: tollgate.AuditLogin, Outcome: "ok"},
			{At: at(time.Hour), ActorName: "mallory", Action: tollgate.AuditLogin, Outcome: tollgate.EUnauthorized},
			{At: at(2 * time.Hour), Actor: "usr_a", ActorName: "alice", Action: tollgate.AuditUserCreate, Outcome: "ok", Target: "usr_b"},
			{At: at(3 * time.Hour), Actor: "usr_a", ActorName: "alice", Action: tollgate.AuditUserDisable, Outcome: "ok", Target: "usr_b"},
		} {
			if err := a.AppendAudit(t.Context(), e); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			name string
			q    tollgate.AuditQuery
			want []string // actions, newest first
		}{
			{"all", tollgate.AuditQuery{}, []string{"user.disable", "user.create", "login", "login"}},
			{"from is inclusive", tollgate.AuditQuery{From: at(time.Hour)}, []string{"user.disable", "user.create", "login"}},
			{"to is exclusive", tollgate.AuditQuery{To: at(2 * time.Hour)}, []string{"login", "login"}},
			{"actor by id", tollgate.AuditQuery{Actor: "usr_a"}, []string{"user.disable", "user.create", "login"}},
			{"actor by the name a failed login gave", tollgate.AuditQuery{Actor: "mallory"}, []string{"login"}},
			{"action", tollgate.AuditQuery{Action: "login"}, []string{"login", "login"}},
			{"action prefix", tollgate.AuditQuery{Action: "user.*"}, []string{"user.disable", "user.create"}},
			{"prefix is not a pattern", tollgate.AuditQuery{Action: "u*"}, []string{"user.disable", "user.create"}},
			{"no match", tollgate.AuditQuery{Action: "ban.*"}, nil},
			{"combined", tollgate.AuditQuery{Actor: "alice", Action: "user.*", From: at(3 * time.Hour)}, []string{"user.disable"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var got []string
				for _, e := range mustEvents(t, a, tt.q) {
					got = append(got, e.Action)
				}
				if strings.Join(got, ",") != strings.Join(tt.want, ",") {
					t.Errorf("actions %v, want %v", got, tt.want)
				}
			})
		}
	})
	t.Run("AuditedCommitsBoth", func(t *testing.T) {
		s, a := open(t)
		MustTenant(t, s, "acme", "Acme")
		e := &tollgate.AuditEvent{Actor: "usr_admin", Action: tollgate.AuditUserDisable, Outcome: "ok"}
		var id string
		err := a.Audited(t.Context(), e, func(tx tollgate.AuditTx) error {
			u := &tollgate.User{Name: "bob", TenantID: "acme", Role: "user"}
			if err := tx.Users().CreateUser(t.Context(), u); err != nil {
				return err
			}
			id = u.ID
			e.Target = u.ID // stored after the change
			// The transaction sees its own writes, also through methods
			// that open a transaction of their own elsewhere.
			_, err := tx.Users().UpdateUser(t.Context(), u.ID, tollgate.UserUpdate{Disabled: ptr(true)})
			if err != nil {
				return err
			}
			if err := tx.Bans().PutBan(t.Context(), &tollgate.Ban{IP: "192.0.2.9", Until: at(time.Hour)}); err != nil {
				return err
			}
			return tx.Revocations().Revoke(t.Context(), &tollgate.Revocation{Issuer: "i", JTI: "j", ExpiresAt: at(time.Hour)})
		})
		if err != nil {
			t.Fatalf("Audited: %v", err)
		}
		u, err := s.Users().User(t.Context(), id)
		if err != nil || !u.Disabled {
			t.Fatalf("user after Audited: %+v, %v; want disabled", u, err)
		}
		if ok, _ := s.Revocations().Revoked(t.Context(), "i", "j"); !ok {
			t.Error("revocation made in Audited is not stored")
		}
		got := mustEvents(t, a, tollgate.AuditQuery{})
		if len(got) != 1 || got[0].Action != tollgate.AuditUserDisable || got[0].Target != id || e.ID == "" {
			t.Errorf("events after Audited: %v", got)
		}
	})
	t.Run("AuditedRollsBackBoth", func(t *testing.T) {
		s, a := open(t)
		boom := errors.New("boom")
		e := &tollgate.AuditEvent{Action: tollgate.AuditTenantCreate, Outcome: "ok"}
		err := a.Audited(t.Context(), e, func(tx tollgate.AuditTx) error {
			if err := tx.Tenants().CreateTenant(t.Context(), &tollgate.Tenant{ID: "acme", Name: "Acme"}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Audited = %v, want the change's error", err)
		}
		if _, err := s.Tenants().Tenant(t.Context(), "acme"); tollgate.ErrorCode(err) != tollgate.ENotFound {
			t.Errorf("tenant of a failed change: %v, want not found", err)
		}
		if got := mustEvents(t, a, tollgate.AuditQuery{}); len(got) != 0 {
			t.Errorf("%d events stored for a failed change", len(got))
		}
		// The store still works after the rollback.
		MustTenant(t, s, "acme", "Acme")
	})
	t.Run("AuditedRefusesInvalidEvent", func(t *testing.T) {
		s, a := open(t)
		ran := false
		err := a.Audited(t.Context(), &tollgate.AuditEvent{Outcome: "ok"}, func(tx tollgate.AuditTx) error {
			ran = true
			return tx.Tenants().CreateTenant(t.Context(), &tollgate.Tenant{ID: "acme", Name: "Acme"})
		})
		wantCode(t, "Audited(no action)", err, tollgate.EInvalid)
		if ran {
			t.Error("the change ran although its audit event was invalid")
		}
		if _, err := s.Tenants().Tenant(t.Context(), "acme"); tollgate.ErrorCode(err) != tollgate.ENotFound {
			t.Errorf("tenant: %v, want not found", err)
		}
	})
}

func mustEvents(t *testing.T, a tollgate.AuditStore, q tollgate.AuditQuery) []*tollgate.AuditEvent {
	t.Helper()
	events, _, err := a.AuditEvents(t.Context(), q)
	if err != nil {
		t.Fatalf("AuditEvents(%+v): %v", q, err)
	}
	return events
}

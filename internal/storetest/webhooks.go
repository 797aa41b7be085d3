package storetest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// RunWebhooks runs the conformance suite of tollgate.WebhookStore. open
// must return a new, migrated, empty store for each call and arrange for it
// to be closed with t.Cleanup.
func RunWebhooks(t *testing.T, open func(t *testing.T) tollgate.WebhookStore) {
	t.Run("Secrets", func(t *testing.T) { testWebhookSecrets(t, open) })
	t.Run("Deliveries", func(t *testing.T) { testWebhookDeliveries(t, open) })
}

func testWebhookSecrets(t *testing.T, open func(t *testing.T) tollgate.WebhookStore) {
	t.Run("EnsureKeepsTheFirst", func(t *testing.T) {
		s := open(t)
		_, err := s.WebhookSecret(t.Context(), "acme", "alice")
		wantCode(t, "secret before any", err, tollgate.ENotFound)
		first := &tollgate.WebhookSecret{TenantID: "acme", UserID: "alice", Secret: []byte("first"), Encrypted: true, CreatedAt: at(0)}
		got, err := s.EnsureWebhookSecret(t.Context(), first)
		if err != nil {
			t.Fatalf("EnsureWebhookSecret: %v", err)
		}
		if !bytes.Equal(got.Secret, []byte("first")) || !got.Encrypted || got.TenantID != "acme" || got.UserID != "alice" {
			t.Errorf("EnsureWebhookSecret = %+v, want the first secret", got)
		}
		wantTime(t, "CreatedAt", got.CreatedAt, at(0))
		again, err := s.EnsureWebhookSecret(t.Context(), &tollgate.WebhookSecret{TenantID: "acme", UserID: "alice", Secret: []byte("second")})
		if err != nil || !bytes.Equal(again.Secret, []byte("first")) {
			t.Errorf("second EnsureWebhookSecret = %+v, %v; want the first secret kept", again, err)
		}
		read, err := s.WebhookSecret(t.Context(), "acme", "alice")
		if err != nil || !bytes.Equal(read.Secret, []byte("first")) {
			t.Errorf("WebhookSecret = %+v, %v; want the first secret", read, err)
		}
	})
	t.Run("OwnPerUser", func(t *testing.T) {
		s := open(t)
		owners := [][2]string{{"acme", "alice"}, {"acme", "bob"}, {"globex", "alice"}}
		for _, o := range owners {
			sec := &tollgate.WebhookSecret{TenantID: o[0], UserID: o[1], Secret: []byte(o[0] + "/" + o[1])}
			if _, err := s.EnsureWebhookSecret(t.Context(), sec); err != nil {
				t.Fatalf("EnsureWebhookSecret(%v): %v", o, err)
			}
		}
		for _, o := range owners {
			got, err := s.WebhookSecret(t.Context(), o[0], o[1])
			if err != nil || string(got.Secret) != o[0]+"/"+o[1] {
				t.Errorf("WebhookSecret(%v) = %+v, %v; want its own secret", o, got, err)
			}
		}
	})
	t.Run("PutRotates", func(t *testing.T) {
		s := open(t)
		if err := s.PutWebhookSecret(t.Context(), &tollgate.WebhookSecret{TenantID: "acme", UserID: "alice", Secret: []byte("old"), CreatedAt: at(0)}); err != nil {
			t.Fatalf("PutWebhookSecret: %v", err)
		}
		if err := s.PutWebhookSecret(t.Context(), &tollgate.WebhookSecret{TenantID: "acme", UserID: "alice", Secret: []byte("new"), CreatedAt: at(time.Hour)}); err != nil {
			t.Fatalf("PutWebhookSecret: %v", err)
		}
		got, err := s.WebhookSecret(t.Context(), "acme", "alice")
		if err != nil || string(got.Secret) != "new" || got.Encrypted {
			t.Fatalf("WebhookSecret after rotation = %+v, %v; want the new secret", got, err)
		}
		wantTime(t, "CreatedAt", got.CreatedAt, at(time.Hour))
	})
	t.Run("Invalid", func(t *testing.T) {
		s := open(t)
		_, err := s.EnsureWebhookSecret(t.Context(), &tollgate.WebhookSecret{TenantID: "acme", UserID: "alice"})
		wantCode(t, "empty secret", err, tollgate.EInvalid)
		err = s.PutWebhookSecret(t.Context(), &tollgate.WebhookSecret{TenantID: "acme", Secret: []byte("x")})
		wantCode(t, "no user", err, tollgate.EInvalid)
		_, err = s.WebhookSecret(t.Context(), "acme", "alice")
		wantCode(t, "secret after refused writes", err, tollgate.ENotFound)
	})
	t.Run("ConcurrentEnsure", func(t *testing.T) {
		s := open(t)
		const n = 8
		got := make([][]byte, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				sec, err := s.EnsureWebhookSecret(t.Context(), &tollgate.WebhookSecret{TenantID: "acme", UserID: "alice", Secret: fmt.Appendf(nil, "s%d", i)})
				if err != nil {
					t.Errorf("EnsureWebhookSecret: %v", err)
					return
				}
				got[i] = sec.Secret
			})
		}
		wg.Wait()
		for i := range n {
			if !bytes.Equal(got[i], got[0]) {
				t.Errorf("concurrent callers got secrets %q and %q; want one", got[0], got[i])
			}
		}
	})
}

func testWebhookDeliveries(t *testing.T, open func(t *testing.T) tollgate.WebhookStore) {
	delivery := func(id string, created time.Duration) *tollgate.WebhookDelivery {
		return &tollgate.WebhookDelivery{ID: id, TenantID: "acme", UserID: "alice", PredictionID: "p1",
			Event: tollgate.WebhookCompleted, URL: "https://example.com/hook", Body: []byte(`{"id":"p1"}`),
			CreatedAt: at(created), LeaseUntil: at(time.Minute)}
	}
	mustCreate := func(t *testing.T, s tollgate.WebhookStore, d *tollgate.WebhookDelivery) {
		t.Helper()
		if err := s.CreateWebhookDelivery(t.Context(), d); err != nil {
			t.Fatalf("CreateWebhookDelivery(%s): %v", d.ID, err)
		}
	}
	claim := func(t *testing.T, s tollgate.WebhookStore, now time.Duration, limit int) []*tollgate.WebhookDelivery {
		t.Helper()
		ds, err := s.ClaimWebhookDeliveries(t.Context(), at(now), at(now+time.Minute), limit)
		if err != nil {
			t.Fatalf("ClaimWebhookDeliveries: %v", err)
		}
		return ds
	}

	t.Run("LeasedUntilItEnds", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, delivery("msg_b", time.Second))
		mustCreate(t, s, delivery("msg_a", 0))
		if got := claim(t, s, 59*time.Second, 10); len(got) != 0 {
			t.Errorf("claimed %d deliveries under a live lease, want 0", len(got))
		}
		got := claim(t, s, time.Minute, 10)
		if len(got) != 2 || got[0].ID != "msg_a" || got[1].ID != "msg_b" {
			t.Fatalf("claimed %v, want msg_a then msg_b", ids(got))
		}
		d := got[0]
		if d.TenantID != "acme" || d.UserID != "alice" || d.PredictionID != "p1" || d.Event != tollgate.WebhookCompleted ||
			d.URL != "https://example.com/hook" || string(d.Body) != `{"id":"p1"}` || d.Attempts != 0 {
			t.Errorf("claimed %+v, want the stored fields", d)
		}
		wantTime(t, "CreatedAt", d.CreatedAt, at(0))
		wantTime(t, "LeaseUntil", d.LeaseUntil, at(2*time.Minute))
		if again := claim(t, s, time.Minute+time.Second, 10); len(again) != 0 {
			t.Errorf("claimed %v again under the new lease, want none", ids(again))
		}
	})
	t.Run("ExtendAndDelete", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, delivery("msg_a", 0))
		if err := s.ExtendWebhookDelivery(t.Context(), "msg_a", 3, at(0)); err != nil {
			t.Fatalf("ExtendWebhookDelivery: %v", err)
		}
		got := claim(t, s, 0, 10)
		if len(got) != 1 || got[0].Attempts != 3 {
			t.Fatalf("claimed %+v after a release, want msg_a with 3 attempts", got)
		}
		if err := s.DeleteWebhookDelivery(t.Context(), "msg_a"); err != nil {
			t.Fatalf("DeleteWebhookDelivery: %v", err)
		}
		if got := claim(t, s, time.Hour, 10); len(got) != 0 {
			t.Errorf("claimed %v after delete, want none", ids(got))
		}
		wantCode(t, "delete absent", s.DeleteWebhookDelivery(t.Context(), "msg_a"), tollgate.ENotFound)
		wantCode(t, "extend absent", s.ExtendWebhookDelivery(t.Context(), "msg_a", 1, at(0)), tollgate.ENotFound)
	})
	t.Run("CreateErrors", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, delivery("msg_a", 0))
		wantCode(t, "duplicate id", s.CreateWebhookDelivery(t.Context(), delivery("msg_a", time.Second)), tollgate.EConflict)
		bad := delivery("msg_b", 0)
		bad.Event = "finished"
		wantCode(t, "unknown event", s.CreateWebhookDelivery(t.Context(), bad), tollgate.EInvalid)
		bad = delivery("msg_c", 0)
		bad.UserID = ""
		wantCode(t, "no user", s.CreateWebhookDelivery(t.Context(), bad), tollgate.EInvalid)
		got := claim(t, s, time.Hour, 10)
		if len(got) != 1 || got[0].ID != "msg_a" || got[0].CreatedAt.Equal(at(time.Second).Truncate(time.Microsecond)) {
			t.Errorf("claimed %v, want only the first msg_a", ids(got))
		}
	})
	t.Run("ConcurrentClaimsTakeEachOnce", func(t *testing.T) {
		s := open(t)
		const n = 30
		for i := range n {
			mustCreate(t, s, delivery(fmt.Sprintf("msg_%02d", i), time.Duration(i)*time.Millisecond))
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					ds, err := s.ClaimWebhookDeliveries(t.Context(), at(time.Hour), at(2*time.Hour), 3)
					if err != nil {
						t.Errorf("ClaimWebhookDeliveries: %v", err)
						return
					}
					if len(ds) == 0 {
						return
					}
					mu.Lock()
					for _, d := range ds {
						seen[d.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(seen) != n {
			t.Errorf("claimed %d distinct deliveries, want %d", len(seen), n)
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("%s claimed %d times, want once", id, c)
			}
		}
	})
}

func ids(ds []*tollgate.WebhookDelivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

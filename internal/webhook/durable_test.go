package webhook_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
	"github.com/tollgate/tollgate/internal/webhook"
)

func TestDurable(t *testing.T) {
	// pending returns the stored deliveries, claiming them far ahead so
	// that every one shows, held or not.
	pending := func(t *testing.T, s tollgate.WebhookDeliveryStore) []*tollgate.WebhookDelivery {
		t.Helper()
		far := time.Now().Add(24 * time.Hour)
		ds, err := s.ClaimWebhookDeliveries(context.Background(), far, far, 100)
		if err != nil {
			t.Fatalf("ClaimWebhookDeliveries: %v", err)
		}
		return ds
	}

	t.Run("ClaimsWhatADeadProcessHeld", func(t *testing.T) {
		r := newReceiver(t)
		db := openDB(t)
		store := db.Webhooks()
		// A process that died mid-retry left this row; its lease ran out.
		now := time.Now()
		row := &tollgate.WebhookDelivery{ID: "msg_left", TenantID: "acme", UserID: "alice", PredictionID: "p9",
			Event: tollgate.WebhookCompleted, URL: r.URL, Body: []byte(`{"id":"p9","event":"completed"}`),
			Attempts: 2, CreatedAt: now.Add(-time.Minute), LeaseUntil: now.Add(-time.Second)}
		if err := store.CreateWebhookDelivery(context.Background(), row); err != nil {
			t.Fatalf("CreateWebhookDelivery: %v", err)
		}
		f := setup(t, db, webhook.Config{Store: store})
		h := r.waitHits(t, 1)
		if id := h[0].Header.Get("webhook-id"); id != "msg_left" {
			t.Errorf("webhook-id %q, want msg_left", id)
		}
		wantSigned(t, f.key(t), h[0], time.Now())
		f.logs.waitFor(t, "webhook delivered")
		f.svc.Stop()
		if left := pending(t, store); len(left) != 0 {
			t.Errorf("%d deliveries left in the store after success, want 0", len(left))
		}
	})
	t.Run("WaitingForASlotIsSentOnce", func(t *testing.T) {
		// One request at a time, taken by receivers that never answer: p9's
		// completed message waits here longer than its lease, and is still
		// sent once, not claimed a second time by the poller.
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // then the server sees the client go
			<-r.Context().Done()
		}))
		defer slow.Close()
		r := newReceiver(t)
		db := openDB(t)
		store := db.Webhooks()
		f := setup(t, db, webhook.Config{Store: store, Concurrency: 1, MaxAttempts: 1,
			AttemptTimeout: 100 * time.Millisecond, Lease: 150 * time.Millisecond, PollInterval: 10 * time.Millisecond})
		for _, p := range []string{"p1", "p2", "p3"} {
			mustSend(t, f.svc, event(slow.URL, p, tollgate.WebhookCompleted, 1))
		}
		mustSend(t, f.svc, event(r.URL, "p9", tollgate.WebhookCompleted, 1))
		f.logs.waitFor(t, "prediction=p9 event=completed")
		r.waitHits(t, 1)
		f.svc.Stop()
		if n := len(r.Hits()); n != 1 {
			t.Errorf("p9's completed message was sent %d times, want once", n)
		}
		if l := f.logs.String(); strings.Contains(l, "update stored webhook") || strings.Contains(l, "extend stored webhook") {
			t.Errorf("a stored message was updated after it was settled:\n%s", l)
		}
	})
	t.Run("FullMemoryLeavesItInTheStore", func(t *testing.T) {
		// Room for one prediction in memory, taken by a receiver that holds
		// its request: p2's completed message waits in the store and goes
		// out once there is room; p3's output is dropped, and logged.
		release := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			<-release
		}))
		defer slow.Close()
		r := newReceiver(t)
		db := openDB(t)
		store := db.Webhooks()
		f := setup(t, db, webhook.Config{Store: store, MaxPending: 1, PollInterval: 10 * time.Millisecond})
		mustSend(t, f.svc, event(slow.URL, "p1", tollgate.WebhookCompleted, 1))
		mustSend(t, f.svc, event(r.URL, "p2", tollgate.WebhookCompleted, 1))
		mustSend(t, f.svc, event(r.URL, "p3", tollgate.WebhookOutput, 1))
		f.logs.waitFor(t, "webhook dropped")
		if n := len(r.Hits()); n != 0 {
			t.Fatalf("receiver got %d requests while memory was full, want 0", n)
		}
		close(release)
		h := r.waitHits(t, 1)
		if h[0].Event != "completed" || !strings.Contains(string(h[0].Body), `"p2"`) {
			t.Errorf("receiver got %s, want p2's completed message", h[0].Body)
		}
	})
	t.Run("OutputIsNotStored", func(t *testing.T) {
		db := openDB(t)
		store := db.Webhooks()
		f := setup(t, db, webhook.Config{Store: store})
		f.svc.Stop() // nothing goes out; stored messages stay
		mustSend(t, f.svc, event("http://127.0.0.1:9/", "p1", tollgate.WebhookOutput, 1))
		mustSend(t, f.svc, event("http://127.0.0.1:9/", "p1", tollgate.WebhookCompleted, 2))
		left := pending(t, store)
		if len(left) != 1 || left[0].Event != tollgate.WebhookCompleted {
			t.Errorf("stored %d deliveries, want only the completed one", len(left))
		}
	})
}

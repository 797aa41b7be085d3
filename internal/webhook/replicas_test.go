package webhook_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/postgres"
	"github.com/tollgate/tollgate/internal/sqlite"
	"github.com/tollgate/tollgate/internal/tollgate"
	"github.com/tollgate/tollgate/internal/webhook"
)

// engine opens n handles on one fresh database, as n processes would.
type engine struct {
	name string
	open func(t *testing.T, n int) []tollgate.WebhookStore
}

// engines are SQLite, and PostgreSQL when TOLLGATE_TEST_POSTGRES is set.
func engines() []engine {
	return []engine{
		{"sqlite", func(t *testing.T, n int) []tollgate.WebhookStore {
			path := filepath.Join(t.TempDir(), "tollgate.db")
			var out []tollgate.WebhookStore
			for range n {
				db, err := sqlite.Open(context.Background(), path)
				if err != nil {
					t.Fatalf("open sqlite: %v", err)
				}
				t.Cleanup(func() { _ = db.Close() })
				if err := db.Migrate(context.Background()); err != nil {
					t.Fatalf("migrate: %v", err)
				}
				out = append(out, db.Webhooks())
			}
			return out
		}},
		{"postgres", func(t *testing.T, n int) []tollgate.WebhookStore {
			url := os.Getenv("TOLLGATE_TEST_POSTGRES")
			if url == "" {
				t.Skip("TOLLGATE_TEST_POSTGRES not set; skipping the PostgreSQL variant")
			}
			schema := "tg_test_" + strings.ToLower(rand.Text()[:12])
			t.Cleanup(func() { dropSchema(t, url, schema) })
			var out []tollgate.WebhookStore
			for range n {
				db, err := postgres.Open(context.Background(), url, postgres.WithSchema(schema))
				if err != nil {
					t.Fatalf("open postgres: %v", err)
				}
				t.Cleanup(func() { _ = db.Close() })
				if err := db.Migrate(context.Background()); err != nil {
					t.Fatalf("migrate: %v", err)
				}
				out = append(out, db.Webhooks())
			}
			return out
		}},
	}
}

func dropSchema(t *testing.T, url, schema string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Errorf("drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
		t.Errorf("drop schema %s: %v", schema, err)
	}
}

// TestReplicas runs processes on one store: a restart resumes a pending
// message, and two processes starting beside what a dead one left send
// each message once.
func TestReplicas(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			t.Run("RestartResumesPending", func(t *testing.T) {
				stores := e.open(t, 2)
				r := newReceiver(t, status(500))
				first := setupOn(t, stores[0], webhook.Config{Store: stores[0], AllowPrivate: true, InitialBackoff: time.Hour, MaxBackoff: 2 * time.Hour, MaxElapsed: 3 * time.Hour})
				mustSend(t, first.svc, event(r.URL, "p1", tollgate.WebhookCompleted, 1))
				r.waitHits(t, 1)
				first.svc.Stop()
				second := setupOn(t, stores[1], webhook.Config{Store: stores[1], AllowPrivate: true})
				t.Cleanup(func() {
					if t.Failed() {
						t.Logf("first process:\n%s\nsecond process:\n%s", first.logs.String(), second.logs.String())
					}
				})
				hits := r.waitHits(t, 2)
				if hits[1].Header.Get("webhook-id") != hits[0].Header.Get("webhook-id") {
					t.Errorf("after the restart the receiver got id %s, want the same message (id %s)",
						hits[1].Header.Get("webhook-id"), hits[0].Header.Get("webhook-id"))
				}
				wantSigned(t, second.key(t), hits[1], time.Now())
			})
			t.Run("EachMessageOnce", func(t *testing.T) {
				stores := e.open(t, 2)
				r := newReceiver(t)
				const n = 20
				now := time.Now()
				for i := range n {
					p := fmt.Sprintf("p%02d", i)
					row := &tollgate.WebhookDelivery{ID: "msg_" + p, TenantID: "acme", UserID: "alice", PredictionID: p,
						Event: tollgate.WebhookCompleted, URL: r.URL, Body: fmt.Appendf(nil, `{"id":%q,"event":"completed"}`, p),
						Attempts: 1, CreatedAt: now.Add(-time.Minute), LeaseUntil: now.Add(-time.Second)}
					if err := stores[0].CreateWebhookDelivery(context.Background(), row); err != nil {
						t.Fatalf("CreateWebhookDelivery: %v", err)
					}
				}
				// Both processes log to one place, to count their deliveries.
				shared := &logs{wrote: make(chan struct{}, 1)}
				var svcs []*webhook.Service
				for _, st := range stores {
					svc, err := webhook.New(webhook.Config{Secrets: webhook.NewSecrets(st, "", nil), Store: st, AllowPrivate: true,
						PollInterval: 5 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(shared, &slog.HandlerOptions{Level: slog.LevelDebug}))})
					if err != nil {
						t.Fatalf("webhook.New: %v", err)
					}
					svcs = append(svcs, svc)
				}
				for _, svc := range svcs {
					if err := svc.Start(context.Background()); err != nil {
						t.Fatalf("Start: %v", err)
					}
				}
				r.waitHits(t, n)
				shared.waitCount(t, "webhook delivered", n)
				for _, svc := range svcs {
					svc.Stop()
				}
				hits := r.Hits()
				seen := map[string]int{}
				for _, h := range hits {
					seen[h.Header.Get("webhook-id")]++
				}
				if len(hits) != n || len(seen) != n {
					t.Errorf("receiver got %d requests for %d messages (%v), want each of %d once", len(hits), len(seen), seen, n)
				}
			})
		})
	}
}

package webhook_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/tollgate/tollgate/internal/tollgate"
	"github.com/tollgate/tollgate/internal/webhook"
)

// BenchmarkSend measures what a caller pays to hand over a webhook: in
// memory (output) and stored first (completed), while the messages go out
// to a real receiver in the background.
func BenchmarkSend(b *testing.B) {
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer recv.Close()
	for _, typ := range []string{tollgate.WebhookOutput, tollgate.WebhookCompleted} {
		b.Run(typ, func(b *testing.B) {
			db := openDB(b)
			svc, err := webhook.New(webhook.Config{
				Secrets: webhook.NewSecrets(db.Webhooks(), "", nil), Store: db.Webhooks(), AllowPrivate: true,
				Logger: slog.New(slog.DiscardHandler),
			})
			if err != nil {
				b.Fatal(err)
			}
			if err := svc.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer svc.Stop()
			body := []byte(`{"id":"p","status":"succeeded","output":["https://example.com/out.png"]}`)
			i := 0
			for b.Loop() {
				i++
				ev := webhook.Event{PredictionID: "p" + strconv.Itoa(i), TenantID: "acme", UserID: "alice",
					Type: typ, URL: recv.URL, Body: body}
				if err := svc.Send(context.Background(), ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

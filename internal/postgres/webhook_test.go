package postgres_test

import (
	"testing"

	"github.com/tollgate/tollgate/internal/storetest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestWebhookStore(t *testing.T) {
	testURL(t)
	storetest.RunWebhooks(t, func(t *testing.T) tollgate.WebhookStore { return MustOpen(t).Webhooks() })
}

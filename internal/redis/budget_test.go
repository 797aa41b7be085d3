package redis_test

import (
	"context"
	"crypto/rand"
	"os"
	"testing"

	"github.com/tollgate/tollgate/internal/redis"
	"github.com/tollgate/tollgate/internal/storetest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestBudgetCounters(t *testing.T) {
	storetest.RunBudgetCounters(t, func(t *testing.T) tollgate.BudgetCounters { return MustOpenBudget(t).BudgetCounters() })
}

// MustOpenBudget connects to TOLLGATE_TEST_REDIS under a fresh key prefix,
// deleted when the test ends; it skips the test when the variable is unset.
func MustOpenBudget(t *testing.T) *redis.DB {
	t.Helper()
	url := os.Getenv("TOLLGATE_TEST_REDIS")
	if url == "" {
		t.Skip("TOLLGATE_TEST_REDIS not set; skipping Redis budget counter tests")
	}
	db, err := redis.Open(url, redis.Options{Prefix: "tg_test_" + rand.Text()[:12] + ":"})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		_ = db.DeletePrefix(context.Background())
		_ = db.Close()
	})
	return db
}

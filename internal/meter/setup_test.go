package meter_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/meter"
	"github.com/tollgate/tollgate/internal/postgres"
	"github.com/tollgate/tollgate/internal/redis"
	"github.com/tollgate/tollgate/internal/sqlite"
	"github.com/tollgate/tollgate/internal/storetest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// baseConfig is a chat route at 0.001 per request and a plan "capped"
// whose users may spend 0.05 a day (exactly 50 calls), with routes priced
// by tokens, GPU time, tiers and images.
const baseConfig = `
plans:
  capped:
    budget: {amount: "0.05", period: day}
  tenantcap:
    tenant_budget: {amount: "0.003", period: month}
  trial:
    free_units: {requests: 2}
routes:
  - name: chat
    path: /v1/chat/completions
    type: openai
    upstreams: [http://127.0.0.1:9]
    price: {per_request: "0.001"}
  - name: tokens
    path: /v1/completions
    type: openai
    upstreams: [http://127.0.0.1:9]
    price: {per_request: "0.001", per_1k_input_tokens: "0.001", per_1k_output_tokens: "0.002"}
  - name: gpu
    path: /gpu
    upstreams: [http://127.0.0.1:9]
    max_cost: "0.5"
    price: {per_gpu_second: "0.01"}
  - name: tiered
    path: /tiered
    upstreams: [http://127.0.0.1:9]
    price:
      per_request: "0.01"
      tiers: [{unit: requests, from: 5, price: "0.005"}]
  - name: colorize
    path: /colorize
    upstreams: [http://127.0.0.1:9]
    price: {per_image: "0.02", per_megapixel: "0.01"}
`

func mustConfig(t testing.TB, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(baseConfig + extra))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func mustSQLite(t testing.TB) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "tollgate.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

// mustPostgres opens a fresh schema of TOLLGATE_TEST_POSTGRES, or skips.
func mustPostgres(t testing.TB) (*postgres.DB, string, string) {
	t.Helper()
	url := os.Getenv("TOLLGATE_TEST_POSTGRES")
	if url == "" {
		t.Skip("TOLLGATE_TEST_POSTGRES not set; skipping the cluster (PostgreSQL) variant")
	}
	schema := "tg_test_" + strings.ToLower(rand.Text()[:12])
	db := openPostgres(t, url, schema)
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		_, _ = conn.Exec(context.Background(), `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
	})
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db, url, schema
}

func openPostgres(t testing.TB, url, schema string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url, postgres.WithSchema(schema))
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// mustRedis connects under a fresh key prefix, or skips.
func mustRedis(t testing.TB) (*redis.DB, string, string) {
	t.Helper()
	url := os.Getenv("TOLLGATE_TEST_REDIS")
	if url == "" {
		t.Skip("TOLLGATE_TEST_REDIS not set; skipping the cluster (Redis) variant")
	}
	prefix := "tg_test_" + rand.Text()[:12] + ":"
	db := openRedis(t, url, prefix)
	t.Cleanup(func() { _ = db.DeletePrefix(context.Background()) })
	return db, url, prefix
}

func openRedis(t testing.TB, url, prefix string) *redis.DB {
	t.Helper()
	db, err := redis.Open(url, redis.Options{Prefix: prefix, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("open redis: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// mustMeter starts a meter and stops it at cleanup.
func mustMeter(t testing.TB, cfg *config.Config, o meter.Options) *meter.Meter {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := meter.New(cfg, o)
	if err != nil {
		t.Fatalf("meter.New: %v", err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(m.Stop)
	return m
}

// setup is one node: SQLite and in-process counters.
func setup(t testing.TB, extra string) (*meter.Meter, storetest.LedgerStore, *config.Config) {
	t.Helper()
	cfg := mustConfig(t, extra)
	l := mustSQLite(t).Ledger()
	return mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l}), l, cfg
}

func principal(user, tenant, plan string) *tollgate.Principal {
	return &tollgate.Principal{UserID: user, TenantID: tenant, Plan: plan, Role: "user"}
}

func call(p *tollgate.Principal, route string) *tollgate.Call {
	return &tollgate.Call{RequestID: "req-" + rand.Text()[:16], Start: time.Now(), Principal: p, Route: route, Method: "POST"}
}

func ok(units tollgate.Units) *tollgate.Outcome {
	return &tollgate.Outcome{Status: 200, Result: tollgate.ResultOK, End: time.Now(), BytesOut: 10, Units: units}
}

// total returns the ledger's settled requests and cost.
func total(t testing.TB, l tollgate.Ledger, q tollgate.UsageQuery) (int64, tollgate.Money) {
	t.Helper()
	rows, err := l.Usage(context.Background(), q)
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	if len(rows) == 0 {
		return 0, 0
	}
	return rows[0].Requests, rows[0].Cost
}

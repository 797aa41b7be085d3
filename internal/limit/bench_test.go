package limit_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/redis"
	"github.com/tollgate/tollgate/internal/tollgate"
)

const benchYAML = `
plans:
  free: {rate_limit: 1000000/s, tenant_rate_limit: 1000000/s, concurrency: 1000, tenant_concurrency: 100000}
routes:
  - {name: chat, path: /v1/chat, upstreams: ["http://127.0.0.1:1"], rate_limit: 1000000/s}
`

// BenchmarkLimiter measures one admitted call: user, tenant and route rate
// keys decided together, user and tenant concurrency slots taken and
// released.
func BenchmarkLimiter(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchLimiter(b, nil) })
	b.Run("redis", func(b *testing.B) { benchLimiter(b, MustRedis(b, redisURL(b))) })
}

func benchLimiter(b *testing.B, db *redis.DB) {
	cfg := MustConfig(b, benchYAML)
	o := limit.Options{Logger: slog.New(slog.DiscardHandler)}
	if db != nil {
		o.Rates, o.Slots, o.Ping = db.Rates(), db.Slots(), db.Ping
	}
	lim, err := limit.New(cfg, o)
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.SetParallelism(8) // many requests in flight, as a gateway has
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := n.Add(1) % 1000
			c := &tollgate.Call{Route: "chat", Principal: &tollgate.Principal{UserID: "u" + strconv.FormatInt(i, 10), TenantID: "t" + strconv.FormatInt(i%10, 10)}}
			release, err := lim.Admit(ctx, c)
			if err != nil {
				b.Fatal(err)
			}
			release(ctx, &tollgate.Outcome{})
		}
	})
	if lim.Status().Mode == limit.ModeFallback {
		b.Fatal("benchmark fell back from Redis")
	}
}

// BenchmarkMiddleware compares a request through Middleware and Admit (IP
// limit, then user, tenant and route limits and concurrency slots) with
// the same handler without limits, in process: the cost limits add to
// every request of one node.
func BenchmarkMiddleware(b *testing.B) {
	cfg := MustConfig(b, benchYAML+"\nprotection: {ip_rate_limit: 1000000/s}\n")
	lim, err := limit.New(cfg, limit.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	handler := func(admit bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if admit {
				i := n.Add(1) % 1000
				c := &tollgate.Call{Route: "chat", Principal: &tollgate.Principal{UserID: "u" + strconv.FormatInt(i, 10), TenantID: "t"}}
				release, err := lim.Admit(r.Context(), c)
				if err != nil {
					b.Fatal(err)
				}
				defer release(r.Context(), &tollgate.Outcome{})
			}
			w.WriteHeader(http.StatusOK)
		})
	}
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"off", handler(false)}, {"on", lim.Middleware(handler(true))}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					r := httptest.NewRequest(http.MethodPost, "/v1/chat", nil)
					r.RemoteAddr = "198.51.100." + strconv.Itoa(i%200) + ":1234"
					c.h.ServeHTTP(httptest.NewRecorder(), r)
				}
			})
		})
	}
}

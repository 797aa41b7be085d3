package limit_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/proxy"
	"github.com/tollgate/tollgate/internal/redis"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// bearerAuth accepts "Bearer <user>.<jti>".
type bearerAuth struct{}

func (bearerAuth) Authenticate(_ context.Context, r *http.Request) (*tollgate.Principal, error) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	user, jti, ok := strings.Cut(tok, ".")
	if !ok || user == "" {
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "invalid token")
	}
	return &tollgate.Principal{UserID: user, TenantID: "t-" + user, JTI: jti, Role: "user"}, nil
}

// gateway is the real data plane behind the limiter's middleware.
func gateway(t *testing.T, yaml string, db *redis.DB) string {
	t.Helper()
	cfg := MustConfig(t, yaml)
	o := limit.Options{Logger: slog.New(slog.DiscardHandler), Timeout: 2 * time.Second}
	if db != nil {
		o.Rates, o.Slots, o.Ping = db.Rates(), db.Slots(), db.Ping
	}
	lim, err := limit.New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(cfg, proxy.Options{Auth: bearerAuth{}, Admissions: []tollgate.Admission{lim}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(lim.Middleware(p))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestDataPlaneReleasesOnDisconnect streams through the real data plane:
// two streams fill the plan's cap, a third call is refused (on the other
// replica in cluster mode), and when the clients hang up mid-stream their
// slots come back.
func TestDataPlaneReleasesOnDisconnect(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // a generation that only ends when the client leaves
	}))
	defer upstream.Close()
	yaml := planYAML + fmt.Sprintf("routes:\n  - {name: chat, path: /v1/chat, upstreams: [%q]}\n", upstream.URL)
	forEachMode(t, func(t *testing.T, cluster bool) {
		var a, b string
		if cluster {
			da, db := redisReplicas(t, redisURL(t))
			a, b = gateway(t, yaml, da), gateway(t, yaml, db)
		} else {
			a = gateway(t, yaml, nil)
			b = a
		}
		user := fmt.Sprintf("gus%d.j", time.Now().UnixNano())
		var bodies []func()
		for range 2 {
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a+"/v1/chat", nil)
			req.Header.Set("Authorization", "Bearer "+user)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("stream: %v %v", resp, err)
			}
			buf := make([]byte, 5)
			_, _ = resp.Body.Read(buf) // the stream is flowing
			bodies = append(bodies, func() { cancel(); resp.Body.Close() })
		}
		if got := get(t, b+"/v1/chat", user).StatusCode; got != http.StatusTooManyRequests {
			t.Fatalf("third call with two streams open: %d, want 429", got)
		}
		for _, hangUp := range bodies {
			hangUp()
		}
		eventually(t, time.Second, "slots back after the clients hung up", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b+"/v1/chat", nil)
			req.Header.Set("Authorization", "Bearer "+user)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	})
}

// BenchmarkDataPlane proxies small requests over loopback HTTP through the
// real data plane with limits off and on (in process and on Redis), so the
// throughput cost of limits can be read from ns/op.
func BenchmarkDataPlane(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer upstream.Close()
	yaml := benchYAML + fmt.Sprintf("  - {name: plain, path: /v1/plain, upstreams: [%q]}\nprotection: {ip_rate_limit: 1000000/s}\nserver: {access_log: false}\n", upstream.URL)
	cfg := MustConfig(b, yaml)
	run := func(b *testing.B, h http.Handler) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/plain", nil)
				req.Header.Set("Authorization", fmt.Sprintf("Bearer u%d.j", i%100))
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
	newProxy := func(b *testing.B, adm ...tollgate.Admission) *proxy.Proxy {
		p, err := proxy.New(cfg, proxy.Options{Auth: bearerAuth{}, Admissions: adm, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	newLimiter := func(b *testing.B, db *redis.DB) *limit.Limiter {
		o := limit.Options{Logger: slog.New(slog.DiscardHandler), Timeout: 2 * time.Second}
		if db != nil {
			o.Rates, o.Slots, o.Ping = db.Rates(), db.Slots(), db.Ping
		}
		lim, err := limit.New(cfg, o)
		if err != nil {
			b.Fatal(err)
		}
		return lim
	}
	b.Run("off", func(b *testing.B) { run(b, newProxy(b)) })
	b.Run("on", func(b *testing.B) {
		lim := newLimiter(b, nil)
		run(b, lim.Middleware(newProxy(b, lim)))
	})
	b.Run("on-redis", func(b *testing.B) {
		lim := newLimiter(b, MustRedis(b, redisURL(b)))
		run(b, lim.Middleware(newProxy(b, lim)))
	})
}

// TestBodyCapHolds sends a body far over the route's max_body, with and
// without a Content-Length; the gateway refuses it with 413 and never
// passes more than the cap upstream.
func TestBodyCapHolds(t *testing.T) {
	var got atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got.Store(max(got.Load(), n))
	}))
	defer upstream.Close()
	url := gateway(t, planYAML+fmt.Sprintf("routes:\n  - {name: up, path: /v1/up, max_body: 64KiB, upstreams: [%q]}\n", upstream.URL), nil)
	for _, chunked := range []bool{false, true} {
		var body io.Reader = strings.NewReader(strings.Repeat("x", 8<<20))
		if chunked {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
		req, _ := http.NewRequest(http.MethodPost, url+"/v1/up", body)
		req.Header.Set("Authorization", "Bearer hal.j")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue // the gateway may close the connection mid-upload
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("8 MiB over a 64 KiB cap (chunked %v): %d, want 413", chunked, resp.StatusCode)
		}
	}
	if n := got.Load(); n > 64<<10 {
		t.Fatalf("the upstream received %d bytes past a 64 KiB cap", n)
	}
}

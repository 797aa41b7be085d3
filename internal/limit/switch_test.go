package limit_test

import (
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/limit"
)

// TestSwitchGrantsNoFreshBurst: a limit of N per minute under load across
// a Redis outage and its return (a restarted Redis that lost its keys)
// admits no more over the whole run than N plus what the limit replenishes
// meanwhile: neither the switch to the local fallback nor the return to
// Redis grants a fresh burst.
func TestSwitchGrantsNoFreshBurst(t *testing.T) {
	const n = 40
	for _, tc := range []struct{ name, plan string }{
		{"RatesOnly", fmt.Sprintf("{rate_limit: %d/m}", n)},
		{"RatesAndSlots", fmt.Sprintf("{rate_limit: %d/m, concurrency: 100}", n)}, // one Redis call for both
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startPrivateRedis(t)
			cfg := MustConfig(t, "plans:\n  free: "+tc.plan+"\nprotection: {ip_rate_limit: 1000/s, replicas: 2}\n")
			da, db := redisReplicas(t, srv.url)
			a, b := setup(t, cfg, da, nil), setup(t, cfg, db, nil)
			start := time.Now()
			admitted := 0
			load := func(phase string, calls int) {
				t.Helper()
				for i := range calls {
					url := []string{a.srv.URL, b.srv.URL}[i%2]
					switch code := get(t, url, "heavy.j").StatusCode; code {
					case http.StatusOK:
						admitted++
					case http.StatusTooManyRequests:
					default:
						t.Fatalf("%s: call %d answered %d, want 200 or 429", phase, i, code)
					}
				}
			}

			load("on Redis", 2*n)
			if admitted < n || admitted > n+1 {
				t.Fatalf("on Redis %d calls admitted %d, want the burst of %d", 2*n, admitted, n)
			}
			srv.stop()
			load("on the fallback", 2*n)
			if a.lim.Status().Mode != limit.ModeFallback || b.lim.Status().Mode != limit.ModeFallback {
				t.Fatalf("modes %s and %s during the outage, want both on the fallback", a.lim.Status().Mode, b.lim.Status().Mode)
			}
			srv.start(t) // a fresh Redis: the keys are gone
			eventually(t, 5*time.Second, "both replicas back on Redis", func() bool {
				return a.lim.Status().Mode == limit.ModeRemote && b.lim.Status().Mode == limit.ModeRemote
			})
			load("back on Redis", 2*n)

			refill := int(math.Ceil(float64(n) * time.Since(start).Minutes()))
			if limit := n + refill + 1; admitted > limit {
				t.Fatalf("across the switch and back %d calls were admitted; a limit of %d/m allows at most %d in %v",
					admitted, n, limit, time.Since(start).Round(time.Millisecond))
			}
		})
	}
}

// TestProbeFindsAnOutageWithoutTraffic: Probe (what /readyz reports)
// finds Redis gone and back by itself, with no call to notice it.
func TestProbeFindsAnOutageWithoutTraffic(t *testing.T) {
	srv := startPrivateRedis(t)
	r := setup(t, MustConfig(t, planYAML), MustRedis(t, srv.url), nil)
	if st := r.lim.Probe(t.Context()); st.Mode != limit.ModeRemote {
		t.Fatalf("Probe with Redis up = %+v, want redis", st)
	}
	srv.stop()
	if st := r.lim.Probe(t.Context()); st.Mode != limit.ModeFallback || st.Error == "" {
		t.Fatalf("Probe with Redis down = %+v, want fallback with the error", st)
	}
	srv.start(t)
	if st := r.lim.Probe(t.Context()); st.Mode != limit.ModeRemote {
		t.Fatalf("Probe with Redis back = %+v, want redis", st)
	}
}

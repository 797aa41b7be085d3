package proxy_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/proxy"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestAdmissions(t *testing.T) {
	up := newUpstream(t, "up", nil)
	cfg := fmt.Sprintf(`
routes:
  - {name: api, path: /api/, upstreams: [%s]}
`, up.URL)

	t.Run("a refusal is rendered and stops the chain", func(t *testing.T) {
		first := newAdmission("budget", nil)
		limiter := newAdmission("limiter", &tollgate.Error{Code: tollgate.ERateLimited, Message: "slow down", RetryAfter: 7})
		last := newAdmission("ledger", nil)
		g := setup(t, cfg, proxy.Options{Admissions: []tollgate.Admission{first, limiter, last}})

		res := do(t, "POST", g.URL+"/api/run", "tok-alice", strings.NewReader("{}"))
		wantStatus(t, res, 429)
		if res.Header.Get("Retry-After") != "7" {
			t.Errorf("Retry-After = %q", res.Header.Get("Retry-After"))
		}
		if e := decodeError(t, res); e.Error.Code != "rate_limit_exceeded" || e.Error.Message != "slow down" {
			t.Errorf("error %+v", e.Error)
		}
		if up.hits.Load() != 0 {
			t.Error("the upstream was called after a refusal")
		}
		if calls, _ := last.counts(); calls != 0 {
			t.Error("an admission after the refusing one was called")
		}
		if _, releases := limiter.counts(); releases != 0 {
			t.Error("the refusing admission was released")
		}
		out := <-first.released
		if out.Result != tollgate.ResultRejected || out.Status != 429 {
			t.Errorf("earlier admission released with %+v, want rejected 429", out)
		}
		if _, releases := first.counts(); releases != 1 {
			t.Errorf("earlier admission released %d times", releases)
		}
	})

	t.Run("released once per request with the outcome", func(t *testing.T) {
		a, b := newAdmission("a", nil), newAdmission("b", nil)
		g := setup(t, cfg, proxy.Options{Admissions: []tollgate.Admission{a, b}})
		for range 3 {
			wantStatus(t, do(t, "GET", g.URL+"/api/x", "tok-alice", nil), 200)
		}
		waitIdle(t, g)
		for _, adm := range []*admission{a, b} {
			calls, releases := adm.counts()
			if calls != 3 || releases != 3 {
				t.Errorf("%s: %d calls, %d releases; want 3 and 3", adm.name, calls, releases)
			}
			out := <-adm.released
			if out.Status != 200 || out.Result != tollgate.ResultOK || out.BytesOut != int64(len("hello from up")) || out.End.IsZero() {
				t.Errorf("%s: outcome %+v", adm.name, out)
			}
		}
	})

	t.Run("upstream failure is reported", func(t *testing.T) {
		failing := newUpstream(t, "failing", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "oom", http.StatusServiceUnavailable)
		})
		a := newAdmission("a", nil)
		g := setup(t, fmt.Sprintf("routes:\n  - {name: api, path: /api/, upstreams: [%s]}\n", failing.URL),
			proxy.Options{Admissions: []tollgate.Admission{a}})
		wantStatus(t, do(t, "GET", g.URL+"/api/x", "tok-alice", nil), 503)
		if out := <-a.released; out.Result != tollgate.ResultUpstreamError || out.Status != 503 {
			t.Errorf("outcome %+v, want upstream_error 503", out)
		}
	})

	t.Run("GPU time from the upstream's header", func(t *testing.T) {
		gpu := newUpstream(t, "gpu", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-GPU-Seconds", "1.25")
			w.Write([]byte("image"))
		})
		a := newAdmission("a", nil)
		g := setup(t, fmt.Sprintf("routes:\n  - {name: img, path: /img, upstreams: [%s], gpu_seconds_header: X-GPU-Seconds}\n", gpu.URL),
			proxy.Options{Admissions: []tollgate.Admission{a}})
		wantStatus(t, do(t, "POST", g.URL+"/img", "tok-alice", strings.NewReader("{}")), 200)
		if out := <-a.released; out.Units.GPUMillis != 1250 {
			t.Errorf("GPUMillis = %d, want 1250", out.Units.GPUMillis)
		}
	})

	t.Run("requests refused before admission never reach it", func(t *testing.T) {
		a := newAdmission("a", nil)
		g := setup(t, cfg, proxy.Options{Admissions: []tollgate.Admission{a}})
		wantStatus(t, do(t, "GET", g.URL+"/api/x", "", nil), 401)
		if calls, _ := a.counts(); calls != 0 {
			t.Errorf("admission called %d times for an unauthenticated request", calls)
		}
	})
}

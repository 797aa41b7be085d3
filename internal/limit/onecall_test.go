package limit_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/proxy"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// countingRates counts the decisions a limiter asks of its shared store.
type countingRates struct {
	tollgate.RateStore
	calls atomic.Int64
}

func (c *countingRates) Allow(ctx context.Context, keys []tollgate.RateKey) (tollgate.RateDecision, error) {
	c.calls.Add(1)
	return c.RateStore.Allow(ctx, keys)
}

// TestOneDecisionPerRequest shows that every request costs exactly one
// shared rate decision (one Redis call in cluster mode) — an admitted
// call, a refused token and a built-in endpoint alike — and that the IP
// limit still holds before authentication.
func TestOneDecisionPerRequest(t *testing.T) {
	cfg := MustConfig(t, `protection: {ip_rate_limit: 5/m}
plans: {free: {rate_limit: 100/m}}
routes: [{name: chat, path: /v1/, upstreams: ["http://127.0.0.1:1"]}]
`)
	rates := &countingRates{RateStore: limit.NewMemoryRates(nil)}
	lim, err := limit.New(cfg, limit.Options{
		Rates: rates, Slots: limit.NewMemorySlots(), Ping: func(context.Context) error { return nil },
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	var upstream atomic.Int64
	dataPlane := entryFunc(func(w http.ResponseWriter, r *http.Request, e *tollgate.Entry) error {
		if r.URL.Path != "/v1/chat" {
			return nil // a built-in endpoint: no admission
		}
		if r.Header.Get("Authorization") != "Bearer good" {
			return tollgate.Errorf(tollgate.EUnauthorized, "invalid token")
		}
		release, err := lim.Admit(r.Context(), &tollgate.Call{
			Principal: &tollgate.Principal{UserID: "u1", TenantID: "t1", Plan: "free"},
			ClientIP:  e.ClientIP, Route: "chat", Entry: e,
		})
		if err != nil {
			return err
		}
		defer release(r.Context(), &tollgate.Outcome{Status: 200})
		upstream.Add(1)
		return nil
	})
	srv := httptest.NewServer(lim.Middleware(dataPlane))
	defer srv.Close()

	cases := []struct{ name, path, token string }{
		{"admitted call", "/v1/chat", "good"},
		{"refused token", "/v1/chat", "bad"},
		{"built-in endpoint with a token", "/v1/me", "good"},
		{"no credentials", "/healthz", ""},
	}
	for _, c := range cases {
		before := rates.calls.Load()
		get(t, srv.URL+c.path, c.token)
		if n := rates.calls.Load() - before; n != 1 {
			t.Errorf("%s: %d shared decisions, want exactly 1", c.name, n)
		}
	}
	// Four requests so far: the IP allows 5 a minute, so the next call
	// ends the burst and then every request is refused.
	var codes []int
	for range 4 {
		codes = append(codes, get(t, srv.URL+"/v1/chat", "good").StatusCode)
	}
	refused := 0
	for _, c := range codes {
		if c == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused == 0 {
		t.Fatalf("statuses %v: the IP limit of 5/m never refused", codes)
	}
	calls := rates.calls.Load()
	if r := get(t, srv.URL+"/v1/chat", "bad"); r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("refused IP with a bad token got %d, want 429 with Retry-After before authentication", r.StatusCode)
	}
	if rates.calls.Load() != calls {
		t.Fatal("a remembered refused IP still cost a shared decision")
	}
}

// TestIPLimitOff: protection.ip_rate_limit: off takes no decision at all.
func TestIPLimitOff(t *testing.T) {
	cfg := MustConfig(t, "protection: {ip_rate_limit: \"off\", login_rate_limit: \"off\"}\n")
	rates := &countingRates{RateStore: limit.NewMemoryRates(nil)}
	lim, err := limit.New(cfg, limit.Options{
		Rates: rates, Slots: limit.NewMemorySlots(), Ping: func(context.Context) error { return nil },
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(lim.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	defer srv.Close()
	for range 20 {
		if r := get(t, srv.URL+"/auth/login", ""); r.StatusCode != 200 {
			t.Fatalf("status %d with limits off", r.StatusCode)
		}
	}
	if n := rates.calls.Load(); n != 0 {
		t.Fatalf("%d decisions with every limit off", n)
	}
}

// TestOneDecisionThroughTheDataPlane: behind the real data plane an
// authenticated call costs one shared decision too, the per-IP limit
// decided with the user's from the Entry the middleware hands on, and the
// tighter of the two is the one reported in the RateLimit-* headers.
func TestOneDecisionThroughTheDataPlane(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(upstream.Close)
	cfg := MustConfig(t, fmt.Sprintf(`protection: {ip_rate_limit: 3/m}
plans: {free: {rate_limit: 100/m}}
routes: [{name: chat, path: /v1/, upstreams: [%q]}]
`, upstream.URL))
	rates := &countingRates{RateStore: limit.NewMemoryRates(nil)}
	lim, err := limit.New(cfg, limit.Options{
		Rates: rates, Slots: limit.NewMemorySlots(), Ping: func(context.Context) error { return nil },
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(cfg, proxy.Options{Auth: bearerAuth{}, Admissions: []tollgate.Admission{lim}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(lim.Middleware(p))
	t.Cleanup(srv.Close)
	for i := range 3 {
		before := rates.calls.Load()
		res := get(t, srv.URL+"/v1/chat", "alice.j1")
		if n := rates.calls.Load() - before; n != 1 {
			t.Fatalf("call %d: %d shared decisions, want exactly 1", i, n)
		}
		if res.StatusCode != http.StatusOK || res.Header.Get("Ratelimit-Limit") != "3" || res.Header.Get("Ratelimit-Remaining") != strconv.Itoa(2-i) {
			t.Fatalf("call %d: %d with RateLimit-Limit %q, -Remaining %q; want 200 with the IP's limit 3 and %d left",
				i, res.StatusCode, res.Header.Get("Ratelimit-Limit"), res.Header.Get("Ratelimit-Remaining"), 2-i)
		}
	}
	if res := get(t, srv.URL+"/v1/chat", "alice.j1"); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the fourth call in a minute from an IP allowed 3 got %d, want 429", res.StatusCode)
	}
}

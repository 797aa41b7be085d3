package meter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/meter"
	"github.com/tollgate/tollgate/internal/proxy"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// bearerAuth accepts "Bearer <user>" for any user of tenant acme on plan
// capped, and "Bearer <user>:<plan>" on another plan.
type bearerAuth struct{}

func (bearerAuth) Authenticate(_ context.Context, r *http.Request) (*tollgate.Principal, error) {
	u, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || u == "" {
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "missing bearer token")
	}
	user, plan, found := strings.Cut(u, ":")
	if !found {
		plan = "capped"
	}
	return &tollgate.Principal{UserID: user, TenantID: "acme", Role: "user", Plan: plan, Scopes: []string{"infer:text"}}, nil
}

// chatUpstream is an OpenAI-compatible upstream that counts the requests
// it served and remembers their request ids.
type chatUpstream struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	ids  []string
}

func newChatUpstream(t testing.TB) *chatUpstream {
	u := &chatUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		u.hits.Add(1)
		u.mu.Lock()
		u.ids = append(u.ids, r.Header.Get("X-Request-ID"))
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}`)
	}))
	t.Cleanup(u.Close)
	return u
}

func gatewayConfig(t testing.TB, upstream string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
plans:
  capped:
    budget: {amount: "0.05", period: day}
routes:
  - name: chat
    path: /v1/chat/completions
    type: openai
    upstreams: [%s]
    price: {per_request: "0.001"}
server:
  access_log: false
`, upstream)))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// newGateway serves the data plane with m as its only admission.
func newGateway(t testing.TB, cfg *config.Config, m *meter.Meter) *httptest.Server {
	t.Helper()
	p, err := proxy.New(cfg, proxy.Options{Auth: bearerAuth{}, Admissions: []tollgate.Admission{m},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv
}

// hammer sends n chat completions as user at once, spread over the
// gateways, and counts the answers: 200s and 429 insufficient_quota.
func hammer(t *testing.T, gateways []*httptest.Server, user string, n int) (served, quota int64) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	var s, q atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest(http.MethodPost, gateways[i%len(gateways)].URL+"/v1/chat/completions",
				strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("Authorization", "Bearer "+user)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("POST: %v", err)
				return
			}
			defer resp.Body.Close()
			var body struct {
				Error struct{ Code string } `json:"error"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			switch {
			case resp.StatusCode == 200:
				s.Add(1)
			case resp.StatusCode == 429 && body.Error.Code == tollgate.EQuota:
				q.Add(1)
			default:
				t.Errorf("status %d code %q", resp.StatusCode, body.Error.Code)
			}
		})
	}
	close(start)
	wg.Wait()
	return s.Load(), q.Load()
}

// checkLedger asserts one settled, ok record per request the upstream
// served, with the upstream's token usage, and the total cost.
func checkLedger(t *testing.T, l tollgate.Ledger, up *chatUpstream, wantCost string) {
	t.Helper()
	up.mu.Lock()
	ids := append([]string(nil), up.ids...)
	up.mu.Unlock()
	for _, id := range ids {
		r, err := l.Record(context.Background(), id)
		if err != nil {
			t.Errorf("no record of served request %q: %v", id, err)
			continue
		}
		if !r.Settled || r.Outcome != tollgate.ResultOK || r.Units.InputTokens != 5 || r.Units.OutputTokens != 7 || r.UserID != "u1" {
			t.Errorf("record %s = %+v", id, r)
		}
	}
	if n, cost := total(t, l, tollgate.UsageQuery{}); n != int64(len(ids)) || cost.String() != wantCost {
		t.Errorf("ledger: %d records costing %s; want %d costing %s", n, cost, len(ids), wantCost)
	}
}

func TestGatewayBudgetOneNode(t *testing.T) {
	up := newChatUpstream(t)
	cfg := gatewayConfig(t, up.URL)
	l := mustSQLite(t).Ledger()
	m := mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l})
	gw := newGateway(t, cfg, m)
	served, quota := hammer(t, []*httptest.Server{gw}, "u1", 200)
	if served != 50 || quota != 150 || up.hits.Load() != 50 {
		t.Fatalf("served %d, refused %d, upstream hit %d times; want 50, 150, 50", served, quota, up.hits.Load())
	}
	gw.Close() // as at shutdown: requests (and their releases) end first
	m.Stop()
	checkLedger(t, l, up, "0.050000")
}

func TestGatewayBudgetTwoReplicas(t *testing.T) {
	pg, url, schema := mustPostgres(t)
	_, rurl, prefix := mustRedis(t)
	up := newChatUpstream(t)
	cfg := gatewayConfig(t, up.URL)
	var gws []*httptest.Server
	var meters []*meter.Meter
	for range 2 {
		l := openPostgres(t, url, schema).Ledger()
		m := mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l, Counters: openRedis(t, rurl, prefix).BudgetCounters(), Cluster: true})
		meters = append(meters, m)
		gws = append(gws, newGateway(t, cfg, m))
	}
	served, quota := hammer(t, gws, "u1", 200)
	if served != 50 || quota != 150 || up.hits.Load() != 50 {
		t.Fatalf("served %d, refused %d, upstream hit %d times; want 50, 150, 50", served, quota, up.hits.Load())
	}
	for i, m := range meters {
		gws[i].Close()
		m.Stop()
	}
	checkLedger(t, pg.Ledger(), up, "0.050000")
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/redis"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// setupCluster starts two replicas sharing a fresh PostgreSQL schema and a
// fresh Redis key prefix, as cluster mode runs behind a balancer.
func setupCluster(t *testing.T, extraYAML string) (a, b *testGateway) {
	t.Helper()
	yaml := clusterYAML(t, extraYAML)
	a = setup(t, yaml)
	b = setup(t, yaml)
	return a, b
}

// clusterYAML is config for replicas sharing a fresh PostgreSQL schema and
// a fresh Redis key prefix, dropped when the test ends.
func clusterYAML(t *testing.T, extraYAML string) string {
	t.Helper()
	pg, rd := os.Getenv("TOLLGATE_TEST_POSTGRES"), os.Getenv("TOLLGATE_TEST_REDIS")
	if pg == "" || rd == "" {
		t.Skip("TOLLGATE_TEST_POSTGRES and TOLLGATE_TEST_REDIS not set; skipping cluster-mode tests")
	}
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	schema := "tg_e2e_" + hex.EncodeToString(suffix)
	prefix := "tg-e2e-" + hex.EncodeToString(suffix) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		if conn, err := pgx.Connect(ctx, pg); err == nil {
			_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			conn.Close(ctx)
		}
		if db, err := redis.Open(rd, redis.Options{Prefix: prefix}); err == nil {
			_ = db.DeletePrefix(ctx)
			db.Close()
		}
	})
	sep := "?"
	if strings.Contains(pg, "?") {
		sep = "&"
	}
	// Replicas behind one balancer share its public URL, the issuer.
	return fmt.Sprintf("public_url: http://tollgate.test\nstore: %q\nredis: %q\nredis_prefix: %q\n%s", pg+sep+"search_path="+schema, rd, prefix, extraYAML)
}

// TestClusterIdentity shows two replicas acting as one: a user made on one
// logs in on the other, a token of one verifies on the other, and a
// revocation or a disabled user on one is refused on the other within a
// second.
func TestClusterIdentity(t *testing.T) {
	up := newUpstream(t)
	a, b := setupCluster(t, routeYAML(up.URL))
	a.mustCLI("user", "add", "ana", "--password", "ana-password", "--tenant", "acme", "--role", "user")
	tk := b.login("ana", "ana-password")
	if r, body := a.do("GET", "/ocr/x", tk.AccessToken, ""); r.StatusCode != 200 {
		t.Fatalf("token of replica b refused by a: %d %s", r.StatusCode, body)
	}
	refusedWithin := func(g *testGateway, tok string) bool {
		return eventually(time.Second, func() bool { r, _ := g.do("GET", "/ocr/x", tok, ""); return r.StatusCode == 401 })
	}
	t.Run("revoked token", func(t *testing.T) {
		tk := a.login("ana", "ana-password")
		if r, _ := b.do("GET", "/ocr/x", tk.AccessToken, ""); r.StatusCode != 200 {
			t.Fatal("fresh token refused")
		}
		a.form("/oauth/revoke", map[string][]string{"token": {tk.AccessToken}})
		if !refusedWithin(b, tk.AccessToken) {
			t.Fatal("token revoked on a still accepted by b after 1 s")
		}
	})
	t.Run("replayed refresh token", func(t *testing.T) {
		// The thief replays a rotated refresh token on a; the access tokens
		// of that session die on b too, the user's other session lives.
		tk := a.login("ana", "ana-password")
		other := b.login("ana", "ana-password")
		rotate := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tk.RefreshToken}}
		if r, _ := b.form("/oauth/token", rotate); r.StatusCode != 200 {
			t.Fatalf("rotation on b: %d", r.StatusCode)
		}
		if r, _ := a.form("/oauth/token", rotate); r.StatusCode != 400 {
			t.Fatalf("replay on a: %d, want 400", r.StatusCode)
		}
		if !refusedWithin(b, tk.AccessToken) {
			t.Fatal("access token of the replayed family still accepted by b after 1 s")
		}
		if r, _ := b.do("GET", "/ocr/x", other.AccessToken, ""); r.StatusCode != 200 {
			t.Fatalf("the user's other session refused: %d", r.StatusCode)
		}
	})
	t.Run("disabled user", func(t *testing.T) {
		tk := b.login("ana", "ana-password")
		admin := a.login("admin", adminPassword).AccessToken
		_, body := a.do("GET", "/admin/v1/users", admin, "")
		var list struct{ Users []struct{ ID, Name string } }
		_ = json.Unmarshal(body, &list)
		var id string
		for _, u := range list.Users {
			if u.Name == "ana" {
				id = u.ID
			}
		}
		if r, _ := a.do("POST", "/admin/v1/users/"+id+"/disable", admin, ""); r.StatusCode != 200 {
			t.Fatalf("disable: %d", r.StatusCode)
		}
		if !refusedWithin(b, tk.AccessToken) {
			t.Fatal("user disabled on a still accepted by b after 1 s")
		}
	})
}

// TestClusterBudgetIsExact fires 200 concurrent calls at two replicas for a
// user whose budget covers exactly 50: exactly 50 reach the upstream, the
// rest get 429 insufficient_quota, and the ledger charges 50 × the price.
func TestClusterBudgetIsExact(t *testing.T) {
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		time.Sleep(5 * time.Millisecond)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer up.Close()
	a, b := setupCluster(t, `plans:
  metered: {budget: {amount: "0.50", period: month}}
protection: {ip_rate_limit: 100000/s, login_rate_limit: 1000/m, replicas: 2}
routes:
  - name: ocr
    path: /ocr/
    upstreams: [`+up.URL+`]
    price: {per_request: "0.01"}
`)
	a.mustCLI("user", "add", "bill", "--password", "bill-password", "--tenant", "acme", "--role", "user", "--plan", "metered")
	tok := a.login("bill", "bill-password").AccessToken

	var wg sync.WaitGroup
	var ok, quota, other atomic.Int64
	for i := range 200 {
		g := a
		if i%2 == 1 {
			g = b
		}
		wg.Go(func() {
			req, _ := http.NewRequest("POST", g.URL+"/ocr/page", strings.NewReader("x"))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				other.Add(1)
				return
			}
			var body struct{ Error struct{ Code string } }
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == 200:
				ok.Add(1)
			case resp.StatusCode == 429 && body.Error.Code == "insufficient_quota":
				quota.Add(1)
			default:
				other.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 50 || quota.Load() != 150 || other.Load() != 0 || hits.Load() != 50 {
		t.Fatalf("ok %d, insufficient_quota %d, other %d, upstream hits %d; want 50, 150, 0, 50", ok.Load(), quota.Load(), other.Load(), hits.Load())
	}
	admin := a.login("admin", adminPassword).AccessToken
	var report struct {
		Total struct {
			Requests int64
			Cost     string
		}
	}
	if !eventually(3*time.Second, func() bool {
		_, body := b.do("GET", "/admin/v1/usage?group_by=user", admin, "")
		_ = json.Unmarshal(body, &report)
		return report.Total.Requests == 50
	}) {
		t.Fatalf("ledger total %+v, want 50 requests", report.Total)
	}
	if report.Total.Cost != "0.500000" {
		t.Fatalf("ledger cost %s, want 0.500000", report.Total.Cost)
	}
}

// TestClusterReplicasStartTogether starts two replicas on an empty store at
// the same moment: both migrate and come up, and there is one admin.
func TestClusterReplicasStartTogether(t *testing.T) {
	yaml := clusterYAML(t, "")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			cfg, err := config.Parse([]byte("listen: 127.0.0.1:0\ndata_dir: " + t.TempDir() + "\n" + yaml))
			if err != nil {
				errs[i] = err
				return
			}
			env := Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(k string) string {
				return map[string]string{"TOLLGATE_ADMIN_PASSWORD": adminPassword}[k]
			}}
			gw, err := newGateway(context.Background(), cfg, gatewayOptions{Env: env, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				errs[i] = err
				return
			}
			gw.Close()
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d did not start: %v", i, err)
		}
	}
	g := setup(t, yaml)
	if out := g.mustCLI("user", "list"); strings.Count(out, "\nadmin ") != 1 {
		t.Fatalf("want exactly one admin:\n%s", out)
	}
	g.login("admin", adminPassword)
}

// TestClusterJobsBudgetIsExact: 30 predictions created at once through two
// replicas against a budget for 10 (each reserves 0.01 + 10 s × 0.001 of
// 0.20): exactly 10 are accepted, the rest 429 insufficient_quota, and
// once they ran the ledger holds 10 records costing what was spent.
func TestClusterJobsBudgetIsExact(t *testing.T) {
	up, upURL := newSlot(t)
	cfg := strings.Replace(jobsConfig(upURL), "  pro: {priority: 10}", "  pro: {priority: 10}\n  tenjobs: {budget: {amount: \"0.20\", period: month}}", 1)
	cfg = strings.Replace(cfg, "    capacity: 1\n", "    capacity: 1\n    timeout: 10s\n", 1)
	a, b := setupCluster(t, cfg+"protection: {ip_rate_limit: 100000/s, login_rate_limit: 1000/m, replicas: 2}\n")
	key := a.userKey("ten", "tenjobs")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var accepted []string
	var quota, other int
	for i := range 30 {
		g := a
		if i%2 == 1 {
			g = b
		}
		wg.Go(func() {
			resp, body := g.do("POST", "/v1/models/test/slot/predictions", key, fmt.Sprintf(`{"input": {"prompt": "j%d"}}`, i))
			status := resp.StatusCode
			var p struct {
				ID    string
				Error struct{ Code string }
			}
			_ = json.Unmarshal(body, &p)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case status == http.StatusCreated && p.ID != "":
				accepted = append(accepted, p.ID)
			case status == http.StatusTooManyRequests && p.Error.Code == "insufficient_quota":
				quota++
			default:
				other++
				t.Errorf("create: %d %s", status, body)
			}
		})
	}
	wg.Wait()
	if len(accepted) != 10 || quota != 20 || other != 0 {
		t.Fatalf("accepted %d, insufficient_quota %d, other %d; want 10, 20, 0", len(accepted), quota, other)
	}
	for range accepted {
		up.release <- struct{}{}
	}
	for _, id := range accepted {
		var p struct{ Status string }
		if !eventually(10*time.Second, func() bool {
			_, body := a.do("GET", "/v1/predictions/"+id, key, "")
			return json.Unmarshal(body, &p) == nil && p.Status == "succeeded"
		}) {
			t.Fatalf("prediction %s is %s, want succeeded", id, p.Status)
		}
	}
	admin := a.login("admin", adminPassword).AccessToken
	var report struct {
		Total struct {
			Requests int64
			Cost     string
			InFlight int64 `json:"in_flight"`
		}
	}
	if !eventually(10*time.Second, func() bool {
		_, body := b.do("GET", "/admin/v1/usage?group_by=user", admin, "")
		_ = json.Unmarshal(body, &report)
		return report.Total.Requests == 10
	}) {
		t.Fatalf("ledger total %+v, want 10 settled jobs", report.Total)
	}
	cost, err := tollgate.ParseMoney(report.Total.Cost)
	limit, _ := tollgate.ParseMoney("0.20")
	if err != nil || cost <= 0 || cost > limit {
		t.Errorf("ledger cost %s, want more than 0 and at most %s", report.Total.Cost, limit)
	}
}

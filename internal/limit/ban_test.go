package limit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/limit"
)

const banYAML = `
protection: {ban_threshold: 5, ban_window: 1m, ban_duration: 10m}
server: {trusted_proxies: [127.0.0.0/8]}
`

// pair returns two replicas: on one node both are the same; with Redis
// they share it.
func pair(t *testing.T, cluster bool, yaml string) (a, b *replica) {
	cfg := MustConfig(t, yaml)
	if !cluster {
		r := setup(t, cfg, nil, nil)
		return r, r
	}
	da, db := redisReplicas(t, redisURL(t))
	return setup(t, cfg, da, nil), setup(t, cfg, db, nil)
}

func forEachMode(t *testing.T, f func(t *testing.T, cluster bool)) {
	t.Run("one node", func(t *testing.T) { f(t, false) })
	t.Run("two replicas sharing redis", func(t *testing.T) { f(t, true) })
}

func TestInvalidTokensBanOnEveryReplica(t *testing.T) {
	forEachMode(t, func(t *testing.T, cluster bool) {
		a, b := pair(t, cluster, banYAML)
		const ip = "203.0.113.9"
		for i := range 6 {
			if got := get(t, a.srv.URL, "", "X-Forwarded-For", ip).StatusCode; got != http.StatusUnauthorized {
				t.Fatalf("invalid token %d: %d, want 401", i+1, got)
			}
		}
		resp := get(t, a.srv.URL, "zoe.j1", "X-Forwarded-For", ip)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("after 6 invalid tokens (threshold 5) even a valid one: %d, want 429 with Retry-After", resp.StatusCode)
		}
		took := eventually(t, time.Second, "ban refused on the other replica", func() bool {
			return get(t, b.srv.URL, "zoe.j1", "X-Forwarded-For", ip).StatusCode == http.StatusTooManyRequests
		})
		t.Logf("ban seen on the other replica after %v", took)
		if got := get(t, b.srv.URL, "zoe.j1", "X-Forwarded-For", "203.0.113.10").StatusCode; got != http.StatusOK {
			t.Fatalf("another address: %d, want 200", got)
		}
	})
}

func TestBanAdminAPI(t *testing.T) {
	forEachMode(t, func(t *testing.T, cluster bool) {
		a, b := pair(t, cluster, banYAML)
		mux := http.NewServeMux()
		for pattern, h := range a.bans.Handlers() {
			mux.Handle(pattern, httpx.Handle(nil, h))
		}
		admin := httptest.NewServer(mux)
		defer admin.Close()

		resp, err := http.Post(admin.URL+"/admin/v1/bans", "application/json",
			strings.NewReader(`{"ip":"192.0.2.0/24","duration":"1h","reason":"scraping"}`))
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST ban: %v %v, want 201", resp.StatusCode, err)
		}
		resp.Body.Close()
		eventually(t, time.Second, "prefix ban refused on the other replica", func() bool {
			return get(t, b.srv.URL, "yan.j1", "X-Forwarded-For", "192.0.2.77").StatusCode == http.StatusTooManyRequests
		})

		resp, err = http.Get(admin.URL + "/admin/v1/bans")
		if err != nil {
			t.Fatal(err)
		}
		var list struct{ Bans []limit.BanJSON }
		_ = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if len(list.Bans) != 1 || list.Bans[0].IP != "192.0.2.0/24" || list.Bans[0].Reason != "scraping" {
			t.Fatalf("GET bans: %+v, want the one prefix ban", list.Bans)
		}

		bad, _ := http.Post(admin.URL+"/admin/v1/bans", "application/json", strings.NewReader(`{"ip":"not-an-ip"}`))
		if bad.StatusCode != http.StatusBadRequest {
			t.Fatalf("POST bad ip: %d, want 400", bad.StatusCode)
		}
		bad.Body.Close()

		del := func() int {
			req, _ := http.NewRequest(http.MethodDelete, admin.URL+"/admin/v1/bans/192.0.2.0/24", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if got := del(); got != http.StatusNoContent {
			t.Fatalf("DELETE ban: %d, want 204", got)
		}
		eventually(t, time.Second, "lifted ban admitted on the other replica", func() bool {
			return get(t, b.srv.URL, "yan.j1", "X-Forwarded-For", "192.0.2.77").StatusCode == http.StatusOK
		})
		if got := del(); got != http.StatusNotFound {
			t.Fatalf("DELETE again: %d, want 404", got)
		}
	})
}

func TestRevocationReachesEveryReplica(t *testing.T) {
	forEachMode(t, func(t *testing.T, cluster bool) {
		a, b := pair(t, cluster, planYAML)
		ctx := context.Background()
		for _, c := range []struct {
			name, token string
			revoke      func() error
		}{
			{"token", "kim.jti-1", func() error { return a.fan.RevokeToken(ctx, "test", "jti-1", time.Now().Add(time.Hour)) }},
			{"disabled user", "lee.j2", func() error { return a.fan.DisableUser(ctx, "lee") }},
			{"all of a user's tokens", "max.j3", func() error { return a.fan.RevokeUser(ctx, "max", time.Now()) }},
		} {
			if got := get(t, b.srv.URL, c.token).StatusCode; got != http.StatusOK {
				t.Fatalf("%s before revocation: %d, want 200", c.name, got)
			}
			if err := c.revoke(); err != nil {
				t.Fatalf("revoke %s: %v", c.name, err)
			}
			took := eventually(t, time.Second, c.name+" refused on the other replica", func() bool {
				return get(t, b.srv.URL, c.token).StatusCode == http.StatusUnauthorized
			})
			t.Logf("%s refused on the other replica after %v", c.name, took)
		}
		if err := a.fan.EnableUser(ctx, "lee"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Second, "enabled user admitted on the other replica", func() bool {
			return get(t, b.srv.URL, "lee.j2").StatusCode == http.StatusOK
		})
	})
}

// The command line is another process: it writes the store (and the bus,
// which on one node it cannot reach); the server picks the ban up at its
// next reload.
func TestBanFromAnotherProcess(t *testing.T) {
	cfg := MustConfig(t, banYAML)
	store := limit.NewMemoryBans() // stands for the SQLite store both processes open
	server := limit.NewBans(cfg, limit.BanOptions{Store: store, ResyncInterval: 50 * time.Millisecond})
	if err := server.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer server.Stop()
	cli := limit.NewBans(cfg, limit.BanOptions{Store: store})
	if _, err := cli.Ban(context.Background(), "2001:db8::1", time.Hour, "cli"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "a ban added by the command line refused by the server", func() bool {
		return server.Check("2001:db8::1") != nil
	})
	if err := cli.Lift(context.Background(), "2001:db8::1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "a ban lifted by the command line admitted by the server", func() bool {
		return server.Check("2001:db8::1") == nil
	})
}

func TestIPv6ClientsCountByPrefix(t *testing.T) {
	r := setup(t, MustConfig(t, banYAML), nil, nil)
	for i := range 6 { // rotating addresses within one /64
		get(t, r.srv.URL, "", "X-Forwarded-For", fmt.Sprintf("2001:db8:1:2::%x", i+1))
	}
	if got := get(t, r.srv.URL, "ann.j", "X-Forwarded-For", "2001:db8:1:2::ffff").StatusCode; got != http.StatusTooManyRequests {
		t.Fatalf("another address of the banned /64: %d, want 429", got)
	}
	if got := get(t, r.srv.URL, "ann.j", "X-Forwarded-For", "2001:db8:1:3::1").StatusCode; got != http.StatusOK {
		t.Fatalf("a neighbouring /64: %d, want 200", got)
	}
}

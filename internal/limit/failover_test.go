package limit_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// burst sends n requests at once-ish to url as a fresh user and counts the
// admitted ones.
func burst(t *testing.T, url, user string, n int) (admitted int, others map[int]int) {
	t.Helper()
	others = map[int]int{}
	for range n {
		switch code := get(t, url, user).StatusCode; code {
		case http.StatusOK:
			admitted++
		case http.StatusTooManyRequests:
		default:
			others[code]++
		}
	}
	return admitted, others
}

func fallbackGauge(t *testing.T, r *replica) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tollgate_limit_fallback" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("tollgate_limit_fallback is not exported")
	return 0
}

func TestRedisOutageFallsBackAndRecovers(t *testing.T) {
	srv := startPrivateRedis(t)
	cfg := MustConfig(t, planYAML) // 10/s per user, replicas: 2
	da, db := redisReplicas(t, srv.url)
	a, b := setup(t, cfg, da, nil), setup(t, cfg, db, nil)
	refuseCfg := MustConfig(t, planYAML)
	refuseCfg.Protection.RedisFailure = "refuse"
	refusing := setup(t, refuseCfg, MustRedis(t, srv.url), nil)

	if got, _ := burst(t, a.srv.URL, "exact1.j", 20); got < 10 || got > 11 {
		t.Fatalf("with Redis, 20 quick calls on one replica admitted %d, want the shared burst of 10", got)
	}

	// Background load over both replicas for the whole outage: nothing
	// but 200 and 429 may come back.
	var codes sync.Map
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			url := []string{a.srv.URL, b.srv.URL}[i%2]
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer load.j")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes.Store(fmt.Sprint("error: ", err), 1)
				continue
			}
			resp.Body.Close()
			codes.Store(resp.StatusCode, 1)
			time.Sleep(5 * time.Millisecond)
		}
	})

	srv.stop()
	eventually(t, 2*time.Second, "fallback after Redis stops", func() bool {
		get(t, a.srv.URL, "probe.j")
		return a.lim.Status().Mode == limit.ModeFallback
	})
	if a.lim.Healthy() || fallbackGauge(t, a) != 1 {
		t.Fatalf("on the fallback: healthy %v, gauge %v; want false and 1", a.lim.Healthy(), fallbackGauge(t, a))
	}
	if got, others := burst(t, a.srv.URL, "local1.j", 20); got < 5 || got > 6 || len(others) > 0 {
		t.Fatalf("on the fallback, 20 quick calls on one replica admitted %d (others %v), want 10 ÷ 2 replicas = 5", got, others)
	}
	if resp := get(t, refusing.srv.URL, "refused.j"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("redis_failure: refuse without Redis: %d, want 503", resp.StatusCode)
	}
	if st := refusing.lim.Status(); st.Mode != limit.ModeRefusing || st.Error == "" {
		t.Fatalf("refusing status %+v, want mode refusing with the error", st)
	}

	srv.start(t)
	eventually(t, 3*time.Second, "back on Redis after it returns", func() bool {
		return a.lim.Status().Mode == limit.ModeRemote && b.lim.Status().Mode == limit.ModeRemote
	})
	stop.Store(true)
	wg.Wait()
	codes.Range(func(k, _ any) bool {
		if k != http.StatusOK && k != http.StatusTooManyRequests {
			t.Errorf("during the outage a client saw %v; want only 200 and 429", k)
		}
		return true
	})
	if fallbackGauge(t, a) != 0 || !a.lim.Healthy() {
		t.Fatal("back on Redis but the gauge or Healthy still report the fallback")
	}
	if got, _ := burst(t, a.srv.URL, "exact2.j", 20); got < 10 || got > 11 {
		t.Fatalf("after Redis returned, 20 quick calls admitted %d, want the exact shared burst of 10", got)
	}
}

func TestBusResyncsAfterReconnect(t *testing.T) {
	srv := startPrivateRedis(t)
	da, db := redisReplicas(t, srv.url)
	var reloads atomic.Int32
	deny := token.NewDenylist(nil)
	sub := limit.NewFanout(limit.FanoutOptions{Bus: db.Bus(), Apply: limit.ApplyTo(deny), Reload: func(context.Context) error {
		reloads.Add(1)
		return nil
	}})
	if err := sub.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	if reloads.Load() != 1 {
		t.Fatalf("reloads at start: %d, want 1", reloads.Load())
	}
	srv.stop()
	srv.awaitReconnect(t) // the subscriber has noticed the outage
	srv.start(t)
	eventually(t, 5*time.Second, "full reload after the bus reconnects", func() bool { return reloads.Load() >= 2 })

	pub := limit.NewFanout(limit.FanoutOptions{Bus: da.Bus(), Apply: func(tollgate.Event) {}})
	eventually(t, 3*time.Second, "revocation delivered after the reconnect", func() bool {
		_ = pub.DisableUser(context.Background(), "u1")
		return deny.Check(&tollgate.Principal{UserID: "u1"}) != nil
	})
}

func TestLoginGuardWithoutRedis(t *testing.T) {
	srv := startPrivateRedis(t)
	clock := newClock()
	g := limit.NewLoginGuard(limit.LoginOptions{Counters: MustRedis(t, srv.url).Counters(), Now: clock.Now})
	srv.stop()
	ctx := context.Background()
	for i := range 4 {
		if err := g.Check(ctx, "ivy", "198.51.100.3"); err != nil {
			t.Fatalf("attempt %d with Redis down: %v, want allowed", i+1, err)
		}
		if err := g.Failed(ctx, "ivy", "198.51.100.3"); err == nil {
			t.Fatal("Failed with Redis down returned no error to log")
		}
	}
	if err := g.Check(ctx, "ivy", "198.51.100.3"); retryAfter(err) <= 0 {
		t.Fatalf("after 4 failures with Redis down: %v, want a 429 from the local count", err)
	}
}

// awaitReconnect stands in for the stopped Redis on its port until a
// client connects, which is how a subscriber shows it noticed the outage
// and is trying to reconnect; the connection is closed at once.
func (p *privateRedis) awaitReconnect(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p.port))
	if err != nil {
		t.Fatalf("listen on the stopped Redis's port: %v", err)
	}
	defer ln.Close()
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("no client tried to reconnect to the stopped Redis: %v", err)
	}
	_ = c.Close()
}

package limit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/redis"
	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// fakeClock is an injectable clock for tests that would otherwise sleep.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// MustConfig parses YAML into a validated config.
func MustConfig(tb testing.TB, yaml string) *config.Config {
	tb.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		tb.Fatalf("config: %v", err)
	}
	return cfg
}

// replica is one gateway process as far as protection goes: the limiter,
// bans and revocation fan-out in front of a small data plane.
type replica struct {
	lim     *limit.Limiter
	bans    *limit.Bans
	fan     *limit.Fanout
	deny    *token.Denylist
	srv     *httptest.Server
	reg     *prometheus.Registry
	unblock chan struct{}
	inside  chan struct{}
}

// setup starts a replica. db nil is one node (in process); otherwise the
// replica shares db's Redis with every other replica built on it.
func setup(t *testing.T, cfg *config.Config, db *redis.DB, now func() time.Time) *replica {
	t.Helper()
	ctx := t.Context()
	r := &replica{deny: token.NewDenylist(nil), reg: prometheus.NewRegistry(), unblock: make(chan struct{}), inside: make(chan struct{}, 100)}
	quiet := slog.New(slog.DiscardHandler)
	bo := limit.BanOptions{Now: now, Logger: quiet}
	lo := limit.Options{Now: now, Registerer: r.reg, PingInterval: 100 * time.Millisecond, Timeout: 2 * time.Second, Logger: quiet}
	fo := limit.FanoutOptions{Apply: limit.ApplyTo(r.deny), Logger: quiet}
	if db != nil {
		bo.Store, bo.Bus, bo.Rates = db.Bans(), db.Bus(), db.Rates()
		lo.Rates, lo.Slots, lo.Ping = db.Rates(), db.Slots(), db.Ping
		fo.Bus = db.Bus()
	}
	r.bans = limit.NewBans(cfg, bo)
	lo.Bans = r.bans
	var err error
	if r.lim, err = limit.New(cfg, lo); err != nil {
		t.Fatalf("limit.New: %v", err)
	}
	r.fan = limit.NewFanout(fo)
	for _, s := range []interface {
		Start(context.Context) error
		Stop()
	}{r.lim, r.bans, r.fan} {
		if err := s.Start(ctx); err != nil {
			t.Fatalf("start: %v", err)
		}
		t.Cleanup(s.Stop)
	}
	r.srv = httptest.NewServer(r.lim.Middleware(entryFunc(r.serve)))
	t.Cleanup(r.srv.Close)
	return r
}

// serve is a minimal data plane: authenticate "Bearer user.jti", admit,
// then answer (or hold the request open with ?block until unblocked or
// the client goes away), releasing exactly once.
func (r *replica) serve(w http.ResponseWriter, req *http.Request, e *tollgate.Entry) error {
	tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	user, jti, ok2 := strings.Cut(tok, ".")
	if !ok || !ok2 || user == "" {
		return tollgate.Errorf(tollgate.EUnauthorized, "invalid token")
	}
	p := &tollgate.Principal{Issuer: "test", UserID: user, TenantID: "t-" + user, JTI: jti, IssuedAt: time.Now().Add(-time.Minute)}
	if err := r.deny.Check(p); err != nil {
		return err
	}
	call := &tollgate.Call{Principal: p, ClientIP: e.ClientIP, Route: "chat", Start: time.Now(), Entry: e}
	release, err := r.lim.Admit(req.Context(), call)
	if err != nil {
		return err
	}
	out := &tollgate.Outcome{Status: http.StatusOK, Result: tollgate.ResultOK}
	defer func() { release(req.Context(), out) }()
	if req.URL.Query().Has("block") {
		r.inside <- struct{}{}
		select {
		case <-r.unblock:
		case <-req.Context().Done():
			out.Result = tollgate.ResultCancelled
			return nil
		}
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// get sends a request as user ("" for no token) and returns the response
// with its body drained.
func get(t *testing.T, url, user string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+user)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp
}

// eventually polls cond for up to d; it is how "within 1 s" is asserted.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// redisURL returns TOLLGATE_TEST_REDIS or skips the test.
func redisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TOLLGATE_TEST_REDIS")
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI=true and TOLLGATE_TEST_REDIS is not set: CI must run the cluster (Redis) variant")
		}
		t.Skip("TOLLGATE_TEST_REDIS is not set; skipping the cluster (Redis) variant")
	}
	return u
}

// MustRedis opens url under a key prefix of the test's own, removed after.
func MustRedis(tb testing.TB, url string) *redis.DB {
	tb.Helper()
	return mustOpen(tb, url, testPrefix(tb))
}

// redisReplicas opens two connections sharing one test prefix, as two
// replicas would.
func redisReplicas(tb testing.TB, url string) (a, b *redis.DB) {
	tb.Helper()
	prefix := testPrefix(tb)
	return mustOpen(tb, url, prefix), mustOpen(tb, url, prefix)
}

func testPrefix(tb testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "tollgate-test:" + tb.Name() + ":" + hex.EncodeToString(b[:]) + ":"
}

func mustOpen(tb testing.TB, url, prefix string) *redis.DB {
	tb.Helper()
	db, err := redis.Open(url, redis.Options{Prefix: prefix, Timeout: 2 * time.Second})
	if err != nil {
		tb.Fatalf("redis: %v", err)
	}
	if err := db.Ping(context.Background()); err != nil {
		tb.Fatalf("redis at %s: %v", url, err)
	}
	tb.Cleanup(func() {
		_ = db.DeletePrefix(context.Background())
		_ = db.Close()
	})
	return db
}

// privateRedis is a redis-server of the test's own, for fault tests.
type privateRedis struct {
	port int
	cmd  *exec.Cmd
	url  string
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed: CI must run the Redis fault tests")
		}
		t.Skip("redis-server is not installed; skipping the Redis fault test")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := &privateRedis{port: port, url: "redis://127.0.0.1:" + strconv.Itoa(port) + "/0"}
	p.start(t)
	t.Cleanup(p.stop)
	return p
}

func (p *privateRedis) start(t *testing.T) {
	t.Helper()
	p.cmd = exec.Command("redis-server", "--port", strconv.Itoa(p.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	eventually(t, 5*time.Second, "private redis-server answers", func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p.port), 100*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

func (p *privateRedis) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		p.cmd = nil
	}
}

// entryFunc is a data plane that takes the request's Entry from the
// limiter's middleware, as the real one does; its errors are rendered as
// httpx.Handle renders them.
type entryFunc func(w http.ResponseWriter, r *http.Request, e *tollgate.Entry) error

func (f entryFunc) ServeEntry(w http.ResponseWriter, r *http.Request, e *tollgate.Entry) {
	httpx.Handle(nil, func(w http.ResponseWriter, r *http.Request) error { return f(w, r, e) }).ServeHTTP(w, r)
}

func (f entryFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.ServeEntry(w, r, nil) }

package proxy_test

import (
	"bytes"
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
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/proxy"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// testAuth accepts "Bearer <key>" for the keys of its map.
type testAuth map[string]*tollgate.Principal

func (a testAuth) Authenticate(_ context.Context, r *http.Request) (*tollgate.Principal, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "missing bearer token")
	}
	p, ok := a[tok]
	if !ok {
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "invalid token")
	}
	return p, nil
}

// newTestAuth knows three callers: alice (user, infer:text, tenant acme),
// bob (user, infer:image, tenant globex) and carol (admin, every scope,
// tenant initech).
func newTestAuth() testAuth {
	return testAuth{
		"tok-alice": {Issuer: "http://gw", UserID: "alice", TenantID: "acme", Role: "user", Scopes: []string{"infer:text"}, Plan: "free", JTI: "j-alice"},
		"tok-bob":   {Issuer: "http://gw", UserID: "bob", TenantID: "globex", Role: "user", Scopes: []string{"infer:image"}, Plan: "pro", JTI: "j-bob"},
		"tok-carol": {Issuer: "http://gw", UserID: "carol", TenantID: "initech", Role: "admin", Scopes: []string{"*"}, Plan: "pro", JTI: "j-carol"},
	}
}

// upstream is a real HTTP server that records what it received.
type upstream struct {
	*httptest.Server
	name string
	hits atomic.Int64
	mu   sync.Mutex
	reqs []received
}

type received struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// newUpstream starts a server that records each request, then calls h (or
// answers 200 with its name when h is nil).
func newUpstream(t testing.TB, name string, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{name: name}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		rec := received{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()}
		if h == nil {
			rec.Body, _ = io.ReadAll(r.Body)
		}
		u.mu.Lock()
		u.reqs = append(u.reqs, rec)
		u.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("X-Upstream", name)
		fmt.Fprintf(w, "hello from %s", name)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) last(t testing.TB) received {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatalf("upstream %s received nothing", u.name)
	}
	return u.reqs[len(u.reqs)-1]
}

// gateway is a Proxy served by a real HTTP server.
type gateway struct {
	*httptest.Server
	proxy *proxy.Proxy
	reg   *prometheus.Registry
	logs  *bytes.Buffer
}

// setup parses the YAML config, builds a Proxy with the test authenticator
// (opts may override) and serves it.
func setup(t testing.TB, yaml string, opts proxy.Options) *gateway {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	g := &gateway{reg: prometheus.NewRegistry(), logs: &bytes.Buffer{}}
	if opts.Auth == nil {
		opts.Auth = newTestAuth()
	}
	if opts.Metrics == nil {
		opts.Metrics = g.reg
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(&lockedWriter{w: g.logs}, nil))
	}
	g.proxy, err = proxy.New(cfg, opts)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	g.Server = httptest.NewServer(g.proxy)
	t.Cleanup(g.Close)
	t.Cleanup(g.proxy.Stop)
	return g
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// do sends a request with an optional bearer token and extra headers.
func do(t testing.TB, method, url, token string, body io.Reader, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func readAll(t testing.TB, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// errorBody decodes the OpenAI error shape.
type errorBody struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	} `json:"error"`
}

func decodeError(t testing.TB, res *http.Response) errorBody {
	t.Helper()
	var e errorBody
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil {
		t.Fatalf("status %d: body is not the error shape: %v", res.StatusCode, err)
	}
	return e
}

func wantStatus(t testing.TB, res *http.Response, want int) {
	t.Helper()
	if res.StatusCode != want {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("status = %d, want %d; body %s", res.StatusCode, want, b)
	}
}

// admission records calls and releases; refuse makes Admit fail.
type admission struct {
	name     string
	refuse   error
	mu       sync.Mutex
	calls    []tollgate.Call
	outcomes []tollgate.Outcome
	released chan tollgate.Outcome
}

func newAdmission(name string, refuse error) *admission {
	return &admission{name: name, refuse: refuse, released: make(chan tollgate.Outcome, 100)}
}

func (a *admission) Admit(_ context.Context, c *tollgate.Call) (func(context.Context, *tollgate.Outcome), error) {
	a.mu.Lock()
	a.calls = append(a.calls, *c)
	a.mu.Unlock()
	if a.refuse != nil {
		return nil, a.refuse
	}
	return func(_ context.Context, o *tollgate.Outcome) {
		a.mu.Lock()
		a.outcomes = append(a.outcomes, *o)
		a.mu.Unlock()
		a.released <- *o
	}, nil
}

func (a *admission) counts() (calls, releases int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.calls), len(a.outcomes)
}

// newProxy builds a Proxy from YAML without serving it.
func newProxy(yaml string) (*proxy.Proxy, error) {
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		return nil, err
	}
	return proxy.New(cfg, proxy.Options{Auth: newTestAuth(), Metrics: prometheus.NewRegistry()})
}

// waitIdle waits until the gateway has finished every request (its
// in-flight gauge is back to 0): a client can read a whole response before
// the gateway's bookkeeping for it ends.
func waitIdle(t testing.TB, g *gateway) {
	t.Helper()
	for range 10000 {
		mfs, err := g.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "tollgate_proxy_in_flight_requests" && mf.GetMetric()[0].GetGauge().GetValue() == 0 {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("requests still in flight")
}

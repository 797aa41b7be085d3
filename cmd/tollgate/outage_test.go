package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"
)

// tcpProxy forwards a local port to a server, and can be cut (the port is
// closed and every connection through it dropped) and restored, as a
// network outage between tollgate and the server would.
type tcpProxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{t: t, target: target, conns: map[net.Conn]bool{}}
	p.listen("127.0.0.1:0")
	p.addr = p.ln.Addr().String()
	t.Cleanup(func() {
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) listen(addr string) {
	p.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatalf("proxy listen: %v", err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.serve(c) })
		}
	})
}

func (p *tcpProxy) serve(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // cut meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	var once sync.Once
	done := func() { once.Do(func() { c.Close(); up.Close() }) }
	p.wg.Go(func() { _, _ = io.Copy(up, c); done() })
	_, _ = io.Copy(c, up)
	done()
}

// cut closes the port and drops every connection through it.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// restore opens the port again.
func (p *tcpProxy) restore() { p.listen(p.addr) }

// readyz is the body of /readyz.
type readyz struct {
	Status string `json:"status"`
	Store  string `json:"store"`
	Ledger struct {
		Writable bool   `json:"writable"`
		Error    string `json:"error"`
	} `json:"ledger"`
	Budgets struct {
		Mode string `json:"mode"`
	} `json:"budgets"`
	Limits struct {
		Mode string `json:"mode"`
	} `json:"limits"`
}

func (g *testGateway) readyz() (int, readyz) {
	g.t.Helper()
	resp, body := g.do("GET", "/readyz", "", "")
	var r readyz
	if err := json.Unmarshal(body, &r); err != nil {
		g.t.Fatalf("/readyz: %v: %s", err, body)
	}
	return resp.StatusCode, r
}

// unavailable asserts that resp is what a caller should get while a store
// is down: 503 service_unavailable with a Retry-After.
func unavailable(t *testing.T, what string, resp *http.Response, body []byte) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(body, &e)
	if resp.StatusCode != http.StatusServiceUnavailable || e.Error.Code != "service_unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%s: %d %s (Retry-After %q); want 503 service_unavailable with Retry-After",
			what, resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
}

// redirect returns rawURL with its host replaced by addr.
func redirect(t *testing.T, rawURL, addr string) (target, proxied string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	target = u.Host
	u.Host = addr
	return target, u.String()
}

const meteredRoute = `routes:
  - name: ocr
    path: /ocr/
    upstreams: [%s]
    price: {per_request: "0.01"}
`

// TestPostgresOutageAnswers503: with PostgreSQL unreachable, callers get
// 503 service_unavailable with a Retry-After (not 500) and /readyz is 503;
// a call that was running when the database went away is settled once it
// is back, with no call needed to trigger it, and then both recover.
func TestPostgresOutageAnswers503(t *testing.T) {
	pg := os.Getenv("TOLLGATE_TEST_POSTGRES")
	if pg == "" {
		t.Skip("TOLLGATE_TEST_POSTGRES not set; skipping the PostgreSQL outage test")
	}
	target, _ := redirect(t, pg, "")
	p := newTCPProxy(t, target)
	_, proxied := redirect(t, pg, p.addr)
	t.Setenv("TOLLGATE_TEST_POSTGRES", proxied) // clusterYAML reads it
	hold, held := make(chan struct{}), make(chan struct{}, 1)
	up := newUpstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("hold") {
			held <- struct{}{}
			<-hold
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	g := setup(t, clusterYAML(t, fmt.Sprintf(meteredRoute, up.URL)))
	g.mustCLI("user", "add", "alice", "--password", "alice-password", "--tenant", "acme", "--role", "user")
	tok := g.login("alice", "alice-password").AccessToken
	admin := g.login("admin", adminPassword).AccessToken
	running := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", g.URL+"/ocr/page?hold", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			running <- 0
			return
		}
		resp.Body.Close()
		running <- resp.StatusCode
	}()
	<-held // admitted and recorded open; it settles after the cut

	p.cut()
	close(hold)
	if code := <-running; code != 200 {
		t.Fatalf("the call running when PostgreSQL went away answered %d, want 200", code)
	}
	hits := up.hits.Load()
	for range 5 {
		resp, body := g.do("POST", "/ocr/page", tok, `{}`)
		unavailable(t, "a metered call with PostgreSQL down", resp, body)
	}
	if n := up.hits.Load() - hits; n != 0 {
		t.Errorf("%d calls reached the upstream unrecorded", n)
	}
	resp, body := g.do("POST", "/auth/login", "", `{"username":"alice","password":"alice-password"}`)
	unavailable(t, "a login with PostgreSQL down", resp, body)
	if code, r := g.readyz(); code != 503 || r.Store != "unreachable" {
		t.Fatalf("/readyz with PostgreSQL down: %d %+v; want 503, store unreachable", code, r)
	}
	// The running call's settlement fails meanwhile, and /readyz says so.
	if !eventually(5*time.Second, func() bool { _, r := g.readyz(); return !r.Ledger.Writable }) {
		_, r := g.readyz()
		t.Fatalf("/readyz while a settlement cannot be written: %+v; want the ledger not writable", r)
	}

	p.restore()
	// No call comes: the settlement is retried by itself, and only then
	// is the replica ready again.
	if !eventually(10*time.Second, func() bool { code, _ := g.readyz(); return code == 200 }) {
		_, r := g.readyz()
		t.Fatalf("/readyz after PostgreSQL returned: %+v", r)
	}
	var rep struct{ Total struct{ Requests int64 } }
	_, body = g.do("GET", "/admin/v1/usage", admin, "")
	if err := json.Unmarshal(body, &rep); err != nil || rep.Total.Requests != 1 {
		t.Fatalf("usage after PostgreSQL returned: %s; want the call that ran through the outage settled\n%s", body, g.stderr.String())
	}
	if resp, body := g.do("POST", "/ocr/page", tok, `{}`); resp.StatusCode != 200 {
		t.Fatalf("a call after PostgreSQL returned: %d %s", resp.StatusCode, body)
	}
}

// TestRedisOutageReadyz: /readyz reports where limits and budgets are
// decided as they are now, not as the last call found them: when Redis
// becomes unreachable it says so at once (limits on the local fallback,
// budgets refusing, 503) and metered calls get 503 with a Retry-After;
// when Redis returns, both modes go back to redis.
func TestRedisOutageReadyz(t *testing.T) {
	rd := os.Getenv("TOLLGATE_TEST_REDIS")
	if rd == "" || os.Getenv("TOLLGATE_TEST_POSTGRES") == "" {
		t.Skip("TOLLGATE_TEST_POSTGRES and TOLLGATE_TEST_REDIS not set; skipping the Redis outage test")
	}
	target, _ := redirect(t, rd, "")
	p := newTCPProxy(t, target)
	_, proxied := redirect(t, rd, p.addr)
	t.Setenv("TOLLGATE_TEST_REDIS", proxied) // clusterYAML reads it
	up := newUpstream(t)
	g := setup(t, clusterYAML(t, `plans:
  metered: {rate_limit: 1000/s, budget: {amount: "5", period: month}}
`+fmt.Sprintf(meteredRoute, up.URL)))
	g.mustCLI("user", "add", "alice", "--password", "alice-password", "--tenant", "acme", "--role", "user", "--plan", "metered")
	tok := g.login("alice", "alice-password").AccessToken
	if resp, body := g.do("POST", "/ocr/page", tok, `{}`); resp.StatusCode != 200 {
		t.Fatalf("a call with Redis up: %d %s", resp.StatusCode, body)
	}
	if code, r := g.readyz(); code != 200 || r.Limits.Mode != "redis" || r.Budgets.Mode != "redis" {
		t.Fatalf("/readyz with Redis up: %d %+v; want 200, limits and budgets on redis", code, r)
	}

	p.cut()
	// No call in between: /readyz finds the outage itself.
	if code, r := g.readyz(); code != 503 || r.Limits.Mode != "fallback" || r.Budgets.Mode != "refusing" {
		t.Fatalf("/readyz with Redis down: %d %+v; want 503, limits on the fallback, budgets refusing", code, r)
	}
	resp, body := g.do("POST", "/ocr/page", tok, `{}`)
	unavailable(t, "a call under a budget with Redis down", resp, body)

	p.restore()
	if !eventually(10*time.Second, func() bool {
		code, r := g.readyz()
		return code == 200 && r.Limits.Mode == "redis" && r.Budgets.Mode == "redis"
	}) {
		code, r := g.readyz()
		t.Fatalf("/readyz after Redis returned: %d %+v", code, r)
	}
	if resp, body := g.do("POST", "/ocr/page", tok, `{}`); resp.StatusCode != 200 {
		t.Fatalf("a call after Redis returned: %d %s", resp.StatusCode, body)
	}
}

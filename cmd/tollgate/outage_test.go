package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
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
	var e struct{ Error struct{ Code, Message string } }
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

var _ = time.Second

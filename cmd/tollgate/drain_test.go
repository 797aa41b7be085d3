package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/internal/config"
)

// closeSignal is a listener that tells when the gateway closes it: the
// drain has begun.
type closeSignal struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
}

func (l *closeSignal) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { close(l.closed) })
	return err
}

// TestDrainSettlesCutOffCalls stops a gateway while a call is in flight on
// an upstream that never answers: new connections are refused as soon as
// the drain begins, a call arriving on an open connection gets 503 with
// Connection: close, and when drain_timeout has passed the call is
// settled before exit, as cancelled and charged the route's price for a
// cancelled call, not left open for the next start to charge.
func TestDrainSettlesCutOffCalls(t *testing.T) {
	arrived := make(chan string, 1)
	hold := make(chan struct{})
	defer close(hold)
	up := newUpstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.Header.Get("X-Request-ID")
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	})
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sig := &closeSignal{Listener: ln, closed: make(chan struct{})}
	addr := ln.Addr().String()
	cfgPath := filepath.Join(dir, "tollgate.yaml")
	yaml := "listen: " + addr + "\ndata_dir: " + filepath.Join(dir, "data") + `
server: {drain_timeout: 200ms}
routes:
  - name: slow
    path: /slow
    upstreams: [` + up.URL + `]
    price: {per_request: "0.01", per_1k_output_tokens: "0.01"}
`
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	g := &testGateway{URL: "http://" + addr, Config: cfgPath, t: t, stderr: &syncBuffer{},
		env: map[string]string{"TOLLGATE_ADMIN_PASSWORD": adminPassword}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env := Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: g.stderr, Getenv: g.getenv}
	gw, err := newGateway(ctx, cfg, gatewayOptions{Env: env, Logger: slog.New(slog.NewJSONHandler(g.stderr, nil)), Listener: sig})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() {
		err := gw.Serve(ctx)
		gw.Close()
		served <- err
	}()
	// A client that has begun a request on an open connection (before the
	// login and the slow call, so the server has long read its first
	// bytes when the drain begins: the connection is not idle).
	late, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if _, err := io.WriteString(late, "POST /slow HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	tok := g.login("admin", adminPassword).AccessToken

	answered := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", g.URL+"/slow", strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		answered <- err
	}()
	id := <-arrived
	cancel() // SIGTERM
	<-sig.closed
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("a new connection was accepted during the drain")
	}
	if _, err := io.WriteString(late, "Host: x\r\nContent-Length: 2\r\n\r\n{}"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(late), nil)
	if err != nil {
		t.Fatalf("the call begun before the drain got no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !resp.Close {
		t.Errorf("a call arriving during the drain got %d (Connection: close %v), want 503 with Connection: close", resp.StatusCode, resp.Close)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if err := <-answered; err == nil {
		t.Error("the cut-off call got a whole answer")
	}
	// The gateway has exited (Serve and Close returned); the record is in
	// the store as it left it.
	rec := g.exported(id)
	if rec.Outcome != "cancelled" || rec.Cost != "0.010000" || rec.Status != 499 {
		t.Fatalf("cut-off call recorded outcome %s, status %d, cost %s; want cancelled, 499, 0.010000 (not its reservation)",
			rec.Outcome, rec.Status, rec.Cost)
	}
}

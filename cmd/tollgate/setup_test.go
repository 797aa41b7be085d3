package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/config"
)

const adminPassword = "admin-password-for-tests"

// testGateway is a running gateway with its data dir and config file.
type testGateway struct {
	URL     string
	Config  string // path of the config file
	env     map[string]string
	stderr  *syncBuffer
	t       *testing.T
	stopped chan struct{}
	cancel  context.CancelFunc
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (g *testGateway) getenv(k string) string { return g.env[k] }

// setup starts a gateway with extra YAML appended to a config that uses a
// fresh data dir, and stops it when the test ends.
func setup(t *testing.T, extraYAML string) *testGateway {
	t.Helper()
	return setupWith(t, extraYAML, false)
}

// setupWith is setup, with the demo backends and routes when demo is set.
func setupWith(t *testing.T, extraYAML string, demo bool) *testGateway {
	t.Helper()
	return setupIn(t, t.TempDir(), extraYAML, gatewayOptions{Demo: demo}, map[string]string{"TOLLGATE_ADMIN_PASSWORD": adminPassword})
}

// setupWithOptions is setup with o's Demo, MeterClock and Heartbeat.
func setupWithOptions(t *testing.T, extraYAML string, o gatewayOptions) *testGateway {
	t.Helper()
	return setupIn(t, t.TempDir(), extraYAML, o, map[string]string{"TOLLGATE_ADMIN_PASSWORD": adminPassword})
}

// setupIn starts a gateway whose config and data live in dir (kept from
// an earlier start in the same dir) with the environment env and o's Demo,
// MeterClock and Heartbeat.
func setupIn(t *testing.T, dir, extraYAML string, o gatewayOptions, env map[string]string) *testGateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	cfgPath := filepath.Join(dir, "tollgate.yaml")
	yaml := "listen: " + addr + "\n" + extraYAML
	if !strings.Contains(extraYAML, "data_dir:") {
		yaml = "listen: " + addr + "\ndata_dir: " + filepath.Join(dir, "data") + "\n" + extraYAML
	}
	if !strings.Contains(extraYAML, "protection:") {
		// Tests log in often from one address; the login limits have
		// tests of their own.
		yaml += "protection: {login_rate_limit: 1000/m, ip_rate_limit: 1000/s}\n"
	}
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &testGateway{
		URL: "http://" + addr, Config: cfgPath, t: t, stderr: &syncBuffer{}, stopped: make(chan struct{}),
		env: env,
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	penv := Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: g.stderr, Getenv: g.getenv}
	gw, err := newGateway(ctx, cfg, gatewayOptions{Demo: o.Demo, Env: penv, Logger: slog.New(slog.NewJSONHandler(g.stderr, nil)),
		Listener: ln, MeterClock: o.MeterClock, Heartbeat: o.Heartbeat})
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	go func() {
		defer close(g.stopped)
		defer gw.Close()
		if err := gw.Serve(ctx); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(g.stop)
	return g
}

// stop stops the gateway and waits until it has; later calls do nothing.
func (g *testGateway) stop() {
	g.cancel()
	<-g.stopped
}

// cli runs a tollgate command against the gateway's config and returns
// its standard output.
func (g *testGateway) cli(args ...string) (string, error) {
	g.t.Helper()
	var out, errOut bytes.Buffer
	env := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: g.getenv}
	err := Run(context.Background(), append(args, "--config", g.Config), env)
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

// mustCLI is cli that fails the test on error.
func (g *testGateway) mustCLI(args ...string) string {
	g.t.Helper()
	out, err := g.cli(args...)
	if err != nil {
		g.t.Fatalf("tollgate %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

type tokens struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
}

// login logs in and returns the tokens; it fails the test unless 200.
func (g *testGateway) login(user, password string) tokens {
	g.t.Helper()
	resp, body := g.do("POST", "/auth/login", "", `{"username":"`+user+`","password":"`+password+`"}`)
	if resp.StatusCode != 200 {
		g.t.Fatalf("login %s: %d %s", user, resp.StatusCode, body)
	}
	var tk tokens
	if err := json.Unmarshal(body, &tk); err != nil {
		g.t.Fatal(err)
	}
	return tk
}

// do sends a JSON (or empty) request with an optional bearer token.
func (g *testGateway) do(method, path, bearer, body string) (*http.Response, []byte) {
	g.t.Helper()
	req, err := http.NewRequest(method, g.URL+path, strings.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return send(g.t, req)
}

// form posts a form-encoded body.
func (g *testGateway) form(path string, v url.Values) (*http.Response, []byte) {
	g.t.Helper()
	req, err := http.NewRequest("POST", g.URL+path, strings.NewReader(v.Encode()))
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return send(g.t, req)
}

func send(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// eventually polls cond every 20 ms for up to d.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

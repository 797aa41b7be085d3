package auth_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/admin"
	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/sqlite"
	"github.com/tollgate/tollgate/internal/token"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// clock is the real time plus an offset that Advance moves forward, so
// tests skip waits (back-off, caches) without sleeping.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// syncBuffer collects the gateway's log lines.
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

// gateway is the identity edge on a real SQLite store, served over HTTP.
type gateway struct {
	t     *testing.T
	URL   string
	db    *sqlite.DB
	path  string
	cfg   *config.Config
	auth  *auth.Service
	clock *clock
	logs  *syncBuffer
}

const testConfig = `
public_url: http://gw.test
roles:
  user: {scopes: [infer:text]}
  admin: {scopes: ["*"]}
plans:
  free: {}
  pro: {scopes: [infer:image]}
`

// setup starts the identity endpoints with a login guard, on a fresh
// database.
func setup(t *testing.T) *gateway {
	t.Helper()
	ctx := t.Context()
	cfg, err := config.Parse([]byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tollgate.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, db: db, path: path, cfg: cfg, clock: &clock{}, logs: &syncBuffer{}}
	log := slog.New(slog.NewJSONHandler(g.logs, nil))
	access, err := token.NewKeyManager(ctx, db.SigningKeys(), token.KeyOptions{Purpose: token.PurposeAccess, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := access.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(access.Stop)
	internal, err := token.NewKeyManager(ctx, db.SigningKeys(), token.KeyOptions{Purpose: token.PurposeInternal, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := token.NewIssuer(access, internal, token.IssuerOptions{Issuer: cfg.PublicURL, Audience: cfg.Tokens.Audience, TTL: cfg.Tokens.AccessTTL})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := token.NewVerifier(token.VerifierOptions{Issuer: cfg.PublicURL, Audience: cfg.Tokens.Audience, Keys: access,
		Denylist: token.NewDenylist(nil), CacheSize: -1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	g.auth, err = auth.New(auth.Options{
		Config: cfg, Store: db, Issuer: issuer, Verifier: verifier, AccessKeys: access, InternalKeys: internal,
		Refresher: token.NewRefresher(db.RefreshTokens(), token.RefreshOptions{}),
		Hasher:    auth.NewHasher(2),
		Guard:     limit.NewLoginGuard(limit.LoginOptions{Now: g.clock.Now}),
		Audit:     db.Audit(), Logger: log, Now: g.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	g.auth.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}

// user creates a user with a password.
func (g *gateway) user(name, password, role string) *tollgate.User {
	g.t.Helper()
	u, err := admin.CreateUser(g.t.Context(), g.cfg, g.db, auth.NewHasher(1), name, password, "acme", role, "")
	if err != nil {
		g.t.Fatalf("create user %s: %v", name, err)
	}
	return u
}

type tokens struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	Error        string `json:"error"`
}

// login posts to /auth/login and returns the status and the answer.
func (g *gateway) login(name, password string) (int, tokens) {
	g.t.Helper()
	body, _ := json.Marshal(map[string]string{"username": name, "password": password})
	resp, err := http.Post(g.URL+"/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tk tokens
	_ = json.NewDecoder(resp.Body).Decode(&tk)
	return resp.StatusCode, tk
}

// mustLogin logs in or fails the test.
func (g *gateway) mustLogin(name, password string) tokens {
	g.t.Helper()
	status, tk := g.login(name, password)
	if status != http.StatusOK || tk.AccessToken == "" {
		g.t.Fatalf("login %s: %d %+v", name, status, tk)
	}
	return tk
}

// form posts a form and returns the status, headers and decoded body.
func (g *gateway) form(path string, v url.Values, basic ...string) (int, http.Header, map[string]any) {
	g.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.URL+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		req.SetBasicAuth(basic[0], basic[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, resp.Header, out
}

// me calls /v1/me with a bearer credential and returns the status and body.
func (g *gateway) me(bearer string) (int, map[string]any) {
	g.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.URL+"/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// audit returns the audit trail, newest first.
func (g *gateway) audit(q tollgate.AuditQuery) []*tollgate.AuditEvent {
	g.t.Helper()
	events, _, err := g.db.Audit().AuditEvents(g.t.Context(), q)
	if err != nil {
		g.t.Fatal(err)
	}
	return events
}

// breakAudit makes the audit table unwritable from outside the gateway,
// as a full disk or a lost table would.
func (g *gateway) breakAudit() {
	g.t.Helper()
	raw, err := sql.Open("sqlite", g.path)
	if err != nil {
		g.t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(context.Background(), `DROP TABLE audit_events`); err != nil {
		g.t.Fatal(err)
	}
}

func base64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

package admin_test

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
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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

// gateway is the admin API and the identity endpoints on a real SQLite
// store, served over HTTP.
type gateway struct {
	t     *testing.T
	URL   string
	db    *sqlite.DB
	path  string
	cfg   *config.Config
	bans  *limit.Bans
	clock *clock
	// admin is an access token of the admin user.
	admin string
	// mounted counts the calls of a change handler of another feature.
	mounted atomic.Int32
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
	g := &gateway{t: t, db: db, path: path, cfg: cfg, clock: &clock{}}
	log := slog.New(slog.DiscardHandler)
	access, err := token.NewKeyManager(ctx, db.SigningKeys(), token.KeyOptions{Logger: log})
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
	issuer, err := token.NewIssuer(access, internal, token.IssuerOptions{Issuer: cfg.PublicURL})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := token.NewVerifier(token.VerifierOptions{Issuer: cfg.PublicURL, Keys: access, Denylist: token.NewDenylist(nil), CacheSize: -1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	hasher := auth.NewHasher(2)
	svc, err := auth.New(auth.Options{
		Config: cfg, Store: db, Issuer: issuer, Verifier: verifier, AccessKeys: access,
		Refresher: token.NewRefresher(db.RefreshTokens(), token.RefreshOptions{}),
		Hasher:    hasher, Audit: db.Audit(), Logger: log, Now: g.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	g.bans = limit.NewBans(cfg, limit.BanOptions{Store: db.Bans(), Logger: log})
	api := admin.New(admin.Options{Config: cfg, Store: db, Audit: db.Audit(), Auth: svc, Bans: g.bans, Hasher: hasher, Logger: log})
	api.Mount("GET /bans", g.bans.ListHandler)
	api.Mount("PUT /things/{id}", func(w http.ResponseWriter, r *http.Request) error {
		g.mounted.Add(1)
		if r.PathValue("id") == "bad" {
			return tollgate.Errorf(tollgate.EInvalid, "bad thing")
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	mux := http.NewServeMux()
	svc.Register(mux)
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	if _, err := admin.CreateUser(ctx, cfg, db, hasher, "root", "root-password", "ops", "admin", ""); err != nil {
		t.Fatal(err)
	}
	g.admin = g.login("root", "root-password")
	return g
}

// login returns an access token, or "" when the login is refused.
func (g *gateway) login(name, password string) string {
	g.t.Helper()
	body, _ := json.Marshal(map[string]string{"username": name, "password": password})
	resp, err := http.Post(g.URL+"/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tk struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tk)
	return tk.AccessToken
}

// call sends a JSON request with a bearer token and decodes the answer.
func (g *gateway) call(method, path, bearer string, body any) (int, map[string]any) {
	g.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, g.URL+path, rd)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// as calls the admin API as the admin and fails unless the status is want.
func (g *gateway) as(want int, method, path string, body any) map[string]any {
	g.t.Helper()
	status, out := g.call(method, path, g.admin, body)
	if status != want {
		g.t.Fatalf("%s %s = %d %v, want %d", method, path, status, out, want)
	}
	return out
}

// lastAudit returns the newest audit event.
func (g *gateway) lastAudit() *tollgate.AuditEvent {
	g.t.Helper()
	events, _, err := g.db.Audit().AuditEvents(g.t.Context(), tollgate.AuditQuery{Limit: 1})
	if err != nil || len(events) == 0 {
		g.t.Fatalf("audit: %v, %d events", err, len(events))
	}
	return events[0]
}

// breakAudit makes the audit table unwritable from outside the gateway.
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

// jtiOf reads the jti claim of a JWS without verifying it.
func jtiOf(t *testing.T, jws string) string {
	t.Helper()
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", jws)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.JTI == "" {
		t.Fatalf("claims %s: %v", b, err)
	}
	return c.JTI
}

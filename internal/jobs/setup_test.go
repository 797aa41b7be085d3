package jobs_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/jobs"
	"github.com/tollgate/tollgate/internal/meter"
	"github.com/tollgate/tollgate/internal/postgres"
	"github.com/tollgate/tollgate/internal/sqlite"
	"github.com/tollgate/tollgate/internal/tollgate"
	"github.com/tollgate/tollgate/internal/webhook"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a running jobs service: its API on a test server, the store and
// ledger behind it, and the meter settling its usage.
type env struct {
	URL    string
	svc    *jobs.Service
	jobs   tollgate.JobStore
	ledger tollgate.Ledger
	meter  *meter.Meter
	clock  *clock
	dir    string
	opts   jobs.Options
	cfg    *config.Config
	reg    *prometheus.Registry
	closed bool

	mu       sync.Mutex
	disabled map[string]bool // tenants disabled, for Options.OwnerDisabled
	mux      func() *http.ServeMux
	current  *http.ServeMux
}

// users the test server knows by the X-Test-User header; a stand-in for
// the gateway's authentication, which cmd/tollgate's tests drive for real.
var users = map[string]*tollgate.Principal{
	"alice":   {UserID: "usr_alice", TenantID: "acme", Role: "user", Plan: "free", Scopes: []string{"jobs"}},
	"bob":     {UserID: "usr_bob", TenantID: "acme", Role: "user", Plan: "free", Scopes: []string{"jobs"}},
	"pro":     {UserID: "usr_pro", TenantID: "big", Role: "user", Plan: "pro", Scopes: []string{"jobs"}},
	"capped":  {UserID: "usr_capped", TenantID: "acme", Role: "user", Plan: "capped", Scopes: []string{"jobs"}},
	"tenjobs": {UserID: "usr_ten", TenantID: "acme", Role: "user", Plan: "tenjobs", Scopes: []string{"jobs"}},
	"noscope": {UserID: "usr_none", TenantID: "acme", Role: "user", Plan: "free", Scopes: []string{"infer:text"}},
}

type principalKey struct{}

// ledger is what an engine's usage ledger offers the meter.
type ledger interface {
	tollgate.Ledger
	tollgate.BudgetStore
}

// openEngine opens a migrated store of engine ("sqlite" or "postgres")
// and returns its job store and ledger. PostgreSQL runs in a schema of
// its own, dropped at the end; without TOLLGATE_TEST_POSTGRES the test
// skips (fails under CI=true).
func openEngine(t testing.TB, engine, dir string) (tollgate.JobStore, ledger, tollgate.WebhookStore) {
	t.Helper()
	if engine == "postgres" {
		url := os.Getenv("TOLLGATE_TEST_POSTGRES")
		if url == "" {
			if os.Getenv("CI") != "" {
				t.Fatal("CI=true and TOLLGATE_TEST_POSTGRES is not set")
			}
			t.Skip("TOLLGATE_TEST_POSTGRES not set; skipping the PostgreSQL run")
		}
		schema := "tg_test_" + strings.ToLower(rand.Text()[:12])
		t.Cleanup(func() {
			conn, err := pgx.Connect(context.Background(), url)
			if err != nil {
				t.Errorf("drop schema: %v", err)
				return
			}
			defer conn.Close(context.Background())
			if _, err := conn.Exec(context.Background(), `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
				t.Errorf("drop schema: %v", err)
			}
		})
		db, err := postgres.Open(t.Context(), url, postgres.WithSchema(schema))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if err := db.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		return db.Jobs(), db.Ledger(), db.Webhooks()
	}
	db, err := sqlite.Open(t.Context(), filepath.Join(dir, "tollgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return db.Jobs(), db.Ledger(), db.Webhooks()
}

// setup runs the service on SQLite with cfgYAML, in which every
// "UPSTREAM" is replaced by upstream's URL.
func setup(t *testing.T, cfgYAML string, upstream http.Handler) *env {
	t.Helper()
	return setupOn(t, "sqlite", cfgYAML, upstream)
}

// setupOn is setup on the named engine.
func setupOn(t *testing.T, engine, cfgYAML string, upstream http.Handler) *env {
	t.Helper()
	return setupWith(t, engine, cfgYAML, upstream, nil)
}

// setupWith is setupOn with results in blobs; nil keeps them in files.
func setupWith(t *testing.T, engine, cfgYAML string, upstream http.Handler, blobs tollgate.BlobStore) *env {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	dir := t.TempDir()
	store, led, hooks := openEngine(t, engine, dir)
	mux := http.NewServeMux()
	api := httptest.NewServer(mux)
	t.Cleanup(api.Close)
	cfg, err := config.Parse([]byte("public_url: " + api.URL + "\n" + strings.ReplaceAll(cfgYAML, "UPSTREAM", up.URL)))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	clk := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := meter.New(cfg, meter.Options{Ledger: led, Budgets: led, Clock: clk.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if blobs == nil {
		if blobs, err = jobs.NewFileBlobs(filepath.Join(dir, "results")); err != nil {
			t.Fatal(err)
		}
	}
	key, err := jobs.LoadLinkKey(filepath.Join(dir, "results.key"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := webhook.NewSecrets(hooks, "", nil)
	wh, err := webhook.New(webhook.Config{Secrets: secrets, Store: hooks, AllowPrivate: cfg.WebhookAllowPrivate,
		InitialBackoff: time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wh.Stop)
	e := &env{URL: api.URL, jobs: store, ledger: led, meter: m, clock: clk, dir: dir, cfg: cfg}
	e.opts = jobs.Options{Store: store, Blobs: blobs, LinkKey: key, Admission: m, Webhooks: wh,
		Principal: func(r *http.Request) *tollgate.Principal {
			p, _ := r.Context().Value(principalKey{}).(*tollgate.Principal)
			return p
		},
		OwnerDisabled: func(o tollgate.Owner) bool {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.disabled[o.TenantID]
		},
		PollInterval: 5 * time.Millisecond, Clock: clk.Now, Logger: log}
	e.svc = e.startService(t)
	t.Cleanup(e.stop)
	require := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := users[r.Header.Get("X-Test-User")]
			if p == nil {
				http.Error(w, `{"error":{"code":"invalid_token"}}`, http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
		})
	}
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The current service, also after a restart.
		e.handler().ServeHTTP(w, r)
	}))
	e.mux = func() *http.ServeMux {
		m := http.NewServeMux()
		e.svc.Register(m, require)
		m.Handle("GET /v1/webhooks/default/secret", require(httpx.Handle(log, webhook.SecretHandler(secrets, e.opts.Principal))))
		return m
	}
	e.current = e.mux()
	return e
}

// startService starts a service on the env's store and result store.
func (e *env) startService(t *testing.T) *jobs.Service {
	t.Helper()
	e.reg = prometheus.NewRegistry()
	e.opts.Metrics = e.reg
	svc, err := jobs.New(e.cfg, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return svc
}

// restart stops the service and starts another on the same store, as a
// restarted gateway would.
func (e *env) restart(t *testing.T) {
	t.Helper()
	e.svc.Stop()
	e.startAgain(t)
}

// startAgain starts a new service after the old one stopped.
func (e *env) startAgain(t *testing.T) {
	t.Helper()
	e.svc = e.startService(t)
	e.mu.Lock()
	e.current = e.mux()
	e.mu.Unlock()
}

func (e *env) handler() http.Handler {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.current
}

// stop ends the service and flushes the meter, so the ledger is final.
func (e *env) stop() {
	if !e.closed {
		e.closed = true
		e.svc.Stop()
		e.meter.Stop()
	}
}

// record returns the ledger's record of a prediction after stop.
func (e *env) record(t *testing.T, id string) *tollgate.UsageRecord {
	t.Helper()
	e.stop()
	r, err := e.ledger.Record(t.Context(), id)
	if err != nil {
		t.Fatalf("ledger record of %s: %v", id, err)
	}
	return r
}

// pred is the part of a prediction the tests read.
type pred struct {
	ID          string             `json:"id"`
	Model       string             `json:"model"`
	Status      string             `json:"status"`
	Input       map[string]any     `json:"input"`
	Output      any                `json:"output"`
	Error       *string            `json:"error"`
	StartedAt   *string            `json:"started_at"`
	CompletedAt *string            `json:"completed_at"`
	URLs        map[string]string  `json:"urls"`
	Metrics     map[string]float64 `json:"metrics"`
	QueuePos    *int               `json:"queue_position"`
}

// call makes a request as user and returns the status, headers and body.
func (e *env) call(t *testing.T, user, method, path string, body any, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	u := path
	if strings.HasPrefix(path, "/") {
		u = e.URL + path
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, u, rd)
	req.Header.Set("X-Test-User", user)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// create submits a prediction and fails unless it is accepted.
func (e *env) create(t *testing.T, user, model string, input any, headers ...string) pred {
	t.Helper()
	status, _, b := e.call(t, user, "POST", "/v1/models/"+model+"/predictions", map[string]any{"input": input}, headers...)
	if status != http.StatusCreated && status != http.StatusOK {
		t.Fatalf("create %s as %s: %d %s", model, user, status, b)
	}
	var p pred
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("create: %v in %s", err, b)
	}
	return p
}

// streamUntilDone reads the prediction's event stream (no credentials)
// until its done event and returns the event names seen, then the
// prediction as it ended.
func (e *env) streamUntilDone(t *testing.T, user string, p pred) ([]string, pred) {
	t.Helper()
	if p.URLs["stream"] == "" { // ended already
		return nil, e.get(t, user, p.ID)
	}
	resp, err := http.Get(p.URLs["stream"])
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream answered %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var names []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if name, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			names = append(names, name)
			if name == "done" {
				break
			}
		}
	}
	return names, e.get(t, user, p.ID)
}

func (e *env) get(t *testing.T, user, id string) pred {
	t.Helper()
	status, _, b := e.call(t, user, "GET", "/v1/predictions/"+id, nil)
	if status != http.StatusOK {
		t.Fatalf("get %s as %s: %d %s", id, user, status, b)
	}
	var p pred
	_ = json.Unmarshal(b, &p)
	return p
}

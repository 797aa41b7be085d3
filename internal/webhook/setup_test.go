package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/internal/sqlite"
	"github.com/tollgate/tollgate/internal/tollgate"
	"github.com/tollgate/tollgate/internal/webhook"
)

// hit is one request a receiver got.
type hit struct {
	Header http.Header
	Body   []byte
	Event  string // the "event" field of the test bodies
	Seq    int    // and their "seq"
}

// receiver is a real HTTP server that answers webhooks by a script: the
// nth request gets script[n], and 200 once the script is used up.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	answer func(n int, h hit, w http.ResponseWriter) // nil answers 200
	hits   []hit
	got    chan struct{} // signalled (without blocking) on every request
}

func newReceiver(t *testing.T, script ...func(w http.ResponseWriter)) *receiver {
	t.Helper()
	return newReceiverFunc(t, func(n int, _ hit, w http.ResponseWriter) {
		if n < len(script) {
			script[n](w)
		}
	})
}

// newReceiverFunc is a receiver whose answer to its nth request h is
// answer's.
func newReceiverFunc(t *testing.T, answer func(n int, h hit, w http.ResponseWriter)) *receiver {
	t.Helper()
	r := &receiver{answer: answer, got: make(chan struct{}, 1)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var ev struct {
			Event string
			Seq   int
		}
		_ = json.Unmarshal(body, &ev)
		h := hit{Header: req.Header.Clone(), Body: body, Event: ev.Event, Seq: ev.Seq}
		r.mu.Lock()
		n := len(r.hits)
		r.hits = append(r.hits, h)
		r.mu.Unlock()
		select {
		case r.got <- struct{}{}:
		default:
		}
		r.answer(n, h, w)
	}))
	t.Cleanup(r.Close)
	return r
}

func status(code int) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) { w.WriteHeader(code) }
}

func retryAfter(code int, after string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", after)
		w.WriteHeader(code)
	}
}

// Hits returns the requests so far.
func (r *receiver) Hits() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hit(nil), r.hits...)
}

// waitHits waits (in real time, on the receiver's requests) until it has
// n of them.
func (r *receiver) waitHits(t *testing.T, n int) []hit {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		if h := r.Hits(); len(h) >= n {
			return h
		}
		select {
		case <-r.got:
		case <-timeout:
			t.Fatalf("receiver got %d requests, want %d", len(r.Hits()), n)
		}
	}
}

// logs collects what the service logs, and signals each record.
type logs struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.wrote <- struct{}{}:
	default:
	}
	return l.buf.Write(p)
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor waits (in real time) until the logs contain s.
func (l *logs) waitFor(t *testing.T, s string) { t.Helper(); l.waitCount(t, s, 1) }

// waitCount waits (in real time) until the logs contain s n times.
func (l *logs) waitCount(t *testing.T, s string, n int) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for strings.Count(l.String(), s) < n {
		select {
		case <-l.wrote:
		case <-timeout:
			t.Fatalf("logs never showed %q; logs:\n%s", s, l.String())
		}
	}
}

// fixture is a service under test and its collaborators.
type fixture struct {
	svc     *webhook.Service
	secrets *webhook.Secrets
	logs    *logs
}

// openDB opens a migrated SQLite store, closed when the test ends.
func openDB(t testing.TB) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "tollgate.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

// setup starts a service on db with cfg (Secrets and Logger filled in, and
// AllowPrivate set, since test receivers listen on loopback) and stops it when
// the test ends. A nil db gets a new one; deliveries are stored only when
// cfg.Store is set.
func setup(t *testing.T, db *sqlite.DB, cfg webhook.Config) *fixture {
	t.Helper()
	cfg.AllowPrivate = true
	return setupGuarded(t, db, cfg)
}

// setupGuarded is setup with cfg.AllowPrivate as given.
func setupGuarded(t *testing.T, db *sqlite.DB, cfg webhook.Config) *fixture {
	t.Helper()
	if db == nil {
		db = openDB(t)
	}
	return setupOn(t, db.Webhooks(), cfg)
}

// setupOn is setupGuarded on any engine's store (for secrets; deliveries
// are stored only when cfg.Store is set).
func setupOn(t *testing.T, store tollgate.WebhookStore, cfg webhook.Config) *fixture {
	t.Helper()
	f := &fixture{logs: &logs{wrote: make(chan struct{}, 1)}}
	if cfg.Secrets == nil {
		cfg.Secrets = webhook.NewSecrets(store, "", nil)
	}
	f.secrets = cfg.Secrets
	cfg.Logger = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := webhook.New(cfg)
	if err != nil {
		t.Fatalf("webhook.New: %v", err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(svc.Stop)
	f.svc = svc
	return f
}

// metric returns the value of a counter of reg with the given labels.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// event is a webhook of prediction p for alice of acme with a small body
// naming the event and a sequence number.
func event(url, p, typ string, seq int, filter ...string) webhook.Event {
	body, _ := json.Marshal(map[string]any{"id": p, "event": typ, "seq": seq})
	return webhook.Event{PredictionID: p, TenantID: "acme", UserID: "alice", Type: typ, URL: url, Filter: filter, Body: body}
}

func mustSend(t *testing.T, s *webhook.Service, ev webhook.Event) {
	t.Helper()
	if err := s.Send(context.Background(), ev); err != nil {
		t.Fatalf("Send(%s %s): %v", ev.PredictionID, ev.Type, err)
	}
}

// key returns alice's signing key.
func (f *fixture) key(t *testing.T) []byte {
	t.Helper()
	k, err := f.secrets.Key(context.Background(), "acme", "alice")
	if err != nil {
		t.Fatalf("Key: %v", err)
	}
	return k
}

// wantSigned fails unless h verifies under key at now.
func wantSigned(t *testing.T, key []byte, h hit, now time.Time) {
	t.Helper()
	if err := webhook.Verify(key, h.Header, h.Body, now, 5*time.Minute); err != nil {
		t.Errorf("request %s does not verify: %v (headers %v)", h.Body, err, h.Header)
	}
}

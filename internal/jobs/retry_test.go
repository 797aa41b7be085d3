package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/jobs"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// retryModels has one http job model whose retries the test sets.
const retryModels = `
jobs:
  - name: demo/retry
    backend: http
    upstreams: [UPSTREAM]
    path: /run
    timeout: 10s
    retries: RETRIES
    inputs:
      prompt: {type: string, required: true}
    price: {per_request: "0.01", per_gpu_second: "0.001"}
`

// counting is an upstream that counts its calls, takes 3 seconds of the
// test clock and answers with a JSON string.
type counting struct {
	clk   func() *clock
	calls atomic.Int32
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.calls.Add(1)
	c.clk().Advance(3 * time.Second)
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`"done"`))
}

// refusingDialer connects to the upstream, except that its first refuse
// connections go to a port nobody listens on, which the kernel refuses.
type refusingDialer struct {
	mu     sync.Mutex
	refuse int
	closed string // 127.0.0.1:port with no listener
	dials  int
}

func newRefusingDialer(t *testing.T, refuse int) *refusingDialer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return &refusingDialer{refuse: refuse, closed: addr}
}

func (d *refusingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.dials++
	if d.dials <= d.refuse {
		addr = d.closed
	}
	d.mu.Unlock()
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

// setupRetry starts a gateway with demo/retry at retries, whose http
// backend connects through d.
func setupRetry(t *testing.T, engine string, retries string, d *refusingDialer) (*env, *counting) {
	up := &counting{}
	e := setupOn(t, engine, strings.ReplaceAll(retryModels, "RETRIES", retries), up)
	up.clk = func() *clock { return e.clock }
	if d != nil {
		client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
		e.opts.Backends = map[string]tollgate.Backend{"demo/retry": &jobs.HTTPBackend{Path: "/run",
			UpstreamCall: jobs.UpstreamCall{Client: client, Clock: e.clock.Now}}}
		e.restart(t)
	}
	return e, up
}

// TestRefusedConnectionIsRetried: an upstream that refuses the first
// connection and answers the second runs the job once; it succeeds and is
// charged once, for that run, having been sent twice.
func TestRefusedConnectionIsRetried(t *testing.T) { onEngines(t, testRefusedConnectionIsRetried) }

func testRefusedConnectionIsRetried(t *testing.T, engine string) {
	d := newRefusingDialer(t, 1)
	e, up := setupRetry(t, engine, "1", d)
	p := e.create(t, "alice", "demo/retry", map[string]any{"prompt": "x"})
	if _, done := e.streamUntilDone(t, "alice", p); done.Status != "succeeded" || done.Output != "done" {
		t.Fatalf("the job ended %s with %v, want succeeded with the upstream's answer", done.Status, done.Output)
	}
	if n := up.calls.Load(); n != 1 {
		t.Errorf("the upstream ran %d calls, want 1", n)
	}
	if j, err := e.jobs.JobByID(t.Context(), p.ID); err != nil || j.Attempts != 2 {
		t.Errorf("the job in the store: %+v, %v; want 2 attempts", j, err)
	}
	if r := e.record(t, p.ID); !r.Settled || r.Outcome != tollgate.ResultOK || r.Units.GPUMillis != 3000 || r.Cost != 13_000 {
		t.Errorf("ledger record %+v, want settled once, ok, for one run of 3 s", r)
	}
}

// TestRefusedConnectionWithoutRetries: with retries 0 (the default), a
// refused connection fails the job at no charge and it is not sent
// again; with retries 1, two refusals fail it too.
func TestRefusedConnectionWithoutRetries(t *testing.T) {
	onEngines(t, func(t *testing.T, engine string) {
		for _, c := range []struct {
			retries string
			refuse  int
		}{{"0", 1}, {"1", 2}} {
			t.Run("retries "+c.retries, func(t *testing.T) {
				d := newRefusingDialer(t, c.refuse)
				e, up := setupRetry(t, engine, c.retries, d)
				p := e.create(t, "alice", "demo/retry", map[string]any{"prompt": "x"})
				if _, done := e.streamUntilDone(t, "alice", p); done.Status != "failed" || done.Error == nil ||
					*done.Error != "the upstream could not be reached" {
					t.Fatalf("the job ended %s (%v), want failed, the upstream not reached", done.Status, done.Error)
				}
				if n := up.calls.Load(); n != 0 {
					t.Errorf("the upstream ran %d calls, want none", n)
				}
				d.mu.Lock()
				dials := d.dials
				d.mu.Unlock()
				if dials != c.refuse {
					t.Errorf("the job was sent %d times, want %d", dials, c.refuse)
				}
				if r := e.record(t, p.ID); !r.Settled || r.Cost != 0 {
					t.Errorf("ledger record %+v, want settled at no charge", r)
				}
			})
		}
	})
}

// pickLikeADeadGateway stops the gateway, queues a job through its API
// (reserving its cost) and picks it in the store, as a gateway killed
// between its pick and its call would leave it; sent also records its
// dispatch, as one killed after sending it.
func pickLikeADeadGateway(t *testing.T, e *env, sent bool) pred {
	t.Helper()
	e.svc.Stop()
	p := e.create(t, "alice", "demo/retry", map[string]any{"prompt": "x"})
	m := e.cfg.AllJobModels()[0]
	j, err := e.jobs.Pick(t.Context(), tollgate.PickRequest{Model: m.Name, Upstreams: m.Upstreams, Capacity: 1, Now: e.clock.Now()})
	if err != nil || j == nil || j.ID != p.ID {
		t.Fatalf("pick: %+v, %v", j, err)
	}
	if sent {
		if err := e.jobs.Dispatch(t.Context(), j.ID, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// TestJobPickedNotSentRunsAfterRestart: a job a stopped gateway picked and
// never sent to its upstream is queued again at the restart (with the
// default retries 0: nothing ran) and runs, charged once.
func TestJobPickedNotSentRunsAfterRestart(t *testing.T) {
	onEngines(t, func(t *testing.T, engine string) {
		e, up := setupRetry(t, engine, "0", nil)
		p := pickLikeADeadGateway(t, e, false)
		e.startAgain(t)
		if _, done := e.streamUntilDone(t, "alice", p); done.Status != "succeeded" {
			t.Fatalf("the job ended %s (%v), want succeeded", done.Status, done.Error)
		}
		if n := up.calls.Load(); n != 1 {
			t.Errorf("the upstream ran %d calls, want 1", n)
		}
		if r := e.record(t, p.ID); !r.Settled || r.Outcome != tollgate.ResultOK || r.Cost != 13_000 {
			t.Errorf("ledger record %+v, want settled once for one run of 3 s", r)
		}
	})
}

// TestJobSentIsNotRetriedAfterRestart: a job a stopped gateway had sent
// to its upstream may have run there: the restart fails it at no charge
// and never sends it again, whatever the model's retries.
func TestJobSentIsNotRetriedAfterRestart(t *testing.T) {
	onEngines(t, func(t *testing.T, engine string) {
		e, up := setupRetry(t, engine, "3", nil)
		p := pickLikeADeadGateway(t, e, true)
		e.startAgain(t)
		if _, done := e.streamUntilDone(t, "alice", p); done.Status != "failed" {
			t.Fatalf("the job ended %s, want failed", done.Status)
		}
		if r := e.record(t, p.ID); !r.Settled || r.Cost != 0 {
			t.Errorf("ledger record %+v, want settled at no charge", r)
		}
		if n := up.calls.Load(); n != 0 {
			t.Errorf("the upstream got %d calls, want none", n)
		}
	})
}

// TestBackendsRefusedWhenUnreachable: the http and gradio backends say
// that an upstream nobody listens for was never reached
// (tollgate.ErrRefused), and that one that answered an error was.
func TestBackendsRefusedWhenUnreachable(t *testing.T) {
	closed := "http://" + newRefusingDialer(t, 0).closed
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	t.Cleanup(busy.Close)
	run := func(upstream string) *tollgate.JobRun {
		return &tollgate.JobRun{Job: &tollgate.Job{ID: "job1", Owner: tollgate.Owner{TenantID: "acme", UserID: "usr_alice"},
			Input: json.RawMessage(`{"prompt":"x"}`)}, Upstream: upstream, Report: func(tollgate.JobEvent) {}}
	}
	gradio := jobs.NewGradioBackend(&config.JobModel{Name: "tts/x", APIName: "/generate"})
	send := map[string]func(upstream string) error{
		"http": func(upstream string) error {
			_, err := (&jobs.HTTPBackend{Path: "/run"}).Watch(t.Context(), run(upstream), "")
			return err
		},
		"gradio": func(upstream string) error {
			_, err := gradio.Submit(t.Context(), run(upstream))
			return err
		},
	}
	for name, f := range send {
		if err := f(closed); !errors.Is(err, tollgate.ErrRefused) {
			t.Errorf("%s to a closed port: %v, want ErrRefused", name, err)
		}
		if err := f(busy.URL); errors.Is(err, tollgate.ErrRefused) {
			t.Errorf("%s to an upstream that answered 503: %v, want no ErrRefused", name, err)
		}
	}
}

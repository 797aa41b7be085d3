package jobs_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/jobs"
	"github.com/tollgate/tollgate/internal/tollgate"
)

const models = `
plans:
  free: {max_queued: 3}
  pro: {priority: 10}
  capped: {budget: {amount: "0.05", period: day}}
jobs:
  - name: demo/echo
    backend: http
    upstreams: [UPSTREAM]
    path: /run
    timeout: 10s
    retention: 1h
    link_ttl: 10m
    inputs:
      prompt: {type: string, required: true, max: 100}
      size: {type: integer, default: 512, min: 256, max: 1280}
      fast: {type: boolean}
      steps: {type: integer, default: 20, max: 100, plan_max: {free: 30}}
    rules:
      - expr: 'claims.plan == "pro" || input.size <= 680'
        message: "free plan: at most 680 px"
    price: {per_request: "0.01", per_gpu_second: "0.001"}
`

// echo is an upstream that takes 3 seconds of the test clock and answers
// with the input it got, a PNG file on itself and a foreign URL.
func echo(clk func() *clock) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /run", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		_ = json.NewDecoder(r.Body).Decode(&in)
		clk().Advance(3 * time.Second)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"got": in, "image": "http://" + r.Host + "/files/out.png",
			"user":      r.Header.Get("X-User-ID") + "@" + r.Header.Get("X-Tenant-ID"),
			"elsewhere": "https://example.com/x.png"})
	})
	mux.HandleFunc("GET /files/out.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write([]byte("\x89PNG\r\n\x1a\nfake image bytes"))
	})
	return mux
}

func TestPredictionSucceeds(t *testing.T) { onEngines(t, testPredictionSucceeds) }

func testPredictionSucceeds(t *testing.T, engine string) {
	var e *env
	e = setupOn(t, engine, models, echo(func() *clock { return e.clock }))
	p := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "hi"}, "Prefer", "wait")
	if p.Status != "succeeded" || p.Model != "demo/echo" || p.StartedAt == nil || p.CompletedAt == nil {
		t.Fatalf("prediction %+v, want succeeded with start and end", p)
	}
	if p.Input["size"] != float64(512) {
		t.Errorf("input %v, want the default size 512 filled in", p.Input)
	}
	if p.Metrics["predict_time"] != 3 {
		t.Errorf("metrics %v, want predict_time 3 (the upstream call)", p.Metrics)
	}
	out := p.Output.(map[string]any)
	if got := out["got"].(map[string]any); got["prompt"] != "hi" || got["size"] != float64(512) {
		t.Errorf("the upstream got %v, want the input with defaults", got)
	}
	if out["user"] != "usr_alice@acme" {
		t.Errorf("the upstream saw the owner %v, want usr_alice@acme in the identity headers", out["user"])
	}
	if out["elsewhere"] != "https://example.com/x.png" {
		t.Errorf("a foreign URL in the output became %v", out["elsewhere"])
	}
	link := out["image"].(string)
	if !strings.HasPrefix(link, e.URL+"/v1/results/"+p.ID+"/out.png?") {
		t.Fatalf("image output %s, want a signed result link", link)
	}
	t.Run("the link downloads without credentials", func(t *testing.T) {
		resp, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "\x89PNG\r\n\x1a\nfake image bytes" {
			t.Errorf("download %d %q", resp.StatusCode, body)
		}
		if resp.Header.Get("Content-Type") != "image/png" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("headers %v, want image/png and nosniff", resp.Header)
		}
	})
	t.Run("range", func(t *testing.T) {
		req, _ := http.NewRequest("GET", link, nil)
		req.Header.Set("Range", "bytes=8-11")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent || string(body) != "fake" {
			t.Errorf("range answer %d %q, want 206 \"fake\"", resp.StatusCode, body)
		}
	})
	t.Run("tampered links are refused", func(t *testing.T) {
		u, _ := url.Parse(link)
		for name, change := range map[string]func(url.Values, *url.URL){
			"signature": func(q url.Values, _ *url.URL) { q.Set("sig", strings.Repeat("A", 43)) },
			"expiry":    func(q url.Values, _ *url.URL) { q.Set("exp", "99999999999") },
			"file":      func(_ url.Values, u *url.URL) { u.Path = strings.Replace(u.Path, "out.png", "other.png", 1) },
			"id":        func(_ url.Values, u *url.URL) { u.Path = strings.Replace(u.Path, p.ID, "zzzz", 1) },
		} {
			c := *u
			q := c.Query()
			change(q, &c)
			c.RawQuery = q.Encode()
			resp, err := http.Get(c.String())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("link with a changed %s: %d, want 403", name, resp.StatusCode)
			}
		}
	})
	t.Run("expired links are refused, results past retention are gone", func(t *testing.T) {
		e.clock.Advance(11 * time.Minute)
		resp, _ := http.Get(link)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("link past its link_ttl: %d, want 403", resp.StatusCode)
		}
		fresh := e.get(t, "alice", p.ID).Output.(map[string]any)["image"].(string)
		if resp, _ := http.Get(fresh); resp.StatusCode != 200 {
			t.Errorf("a fresh link of the same result: %d", resp.StatusCode)
		}
		e.clock.Advance(time.Hour)
		status, _, b := e.call(t, "alice", "GET", "/v1/predictions/"+p.ID, nil)
		var gone struct {
			Output      any  `json:"output"`
			DataRemoved bool `json:"data_removed"`
		}
		json.Unmarshal(b, &gone)
		if status != 200 || gone.Output != nil || !gone.DataRemoved {
			t.Errorf("prediction past retention: %d %s, want no output and data_removed", status, b)
		}
		if resp, _ := http.Get(fresh); resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusNotFound {
			t.Errorf("link past retention: %d", resp.StatusCode)
		}
		if n := resultFiles(t, e); n != 1 {
			t.Fatalf("%d result files before removal, want 1", n)
		}
		if err := e.svc.RemoveExpired(t.Context()); err != nil {
			t.Fatalf("RemoveExpired: %v", err)
		}
		if n := resultFiles(t, e); n != 0 {
			t.Errorf("%d result files left after retention", n)
		}
		if j, _ := e.jobs.JobByID(t.Context(), p.ID); !j.ResultsRemoved {
			t.Error("the job is not marked as removed")
		}
	})
	t.Run("charged once: per request plus GPU seconds", func(t *testing.T) {
		r := e.record(t, p.ID)
		if r.Route != "demo/echo" || r.Model != "demo/echo" || r.Outcome != tollgate.ResultOK || r.Units.GPUMillis != 3000 {
			t.Errorf("usage record %+v", r)
		}
		if want := tollgate.Money(10_000 + 3_000); r.Cost != want {
			t.Errorf("cost %s, want %s (0.01 + 3 s × 0.001)", r.Cost, want)
		}
		if want := tollgate.Money(10_000 + 10_000); r.Reserved != want {
			t.Errorf("reserved %s, want %s (0.01 + the 10 s timeout × 0.001)", r.Reserved, want)
		}
	})
}

func TestRefusedPredictions(t *testing.T) { onEngines(t, testRefusedPredictions) }

func testRefusedPredictions(t *testing.T, engine string) {
	var e *env
	e = setupOn(t, engine, models, echo(func() *clock { return e.clock }))
	tests := []struct {
		name, user, path string
		body             any
		status           int
		want             []string
	}{
		{"unknown model", "alice", "/v1/models/demo/nope/predictions", map[string]any{"input": map[string]any{}}, 404, []string{"model demo/nope does not exist"}},
		{"unknown version", "alice", "/v1/predictions", map[string]any{"version": "x/y", "input": map[string]any{}}, 404, []string{"x/y"}},
		{"each bad field named", "alice", "/v1/models/demo/echo/predictions",
			map[string]any{"input": map[string]any{"size": 99999, "fast": "yes", "color": 1}}, 422,
			[]string{"input.prompt: required", "input.size: want at most 1280", "input.fast: want true or false", "input.color: not an input"}},
		{"not an integer", "alice", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "x", "size": 300.5}}, 422, []string{"input.size: want an integer"}},
		{"rule", "alice", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "x", "size": 1000}}, 403, []string{"free plan: at most 680 px"}},
		{"no jobs scope", "noscope", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "x"}}, 403, []string{"jobs"}},
		{"webhook to loopback", "alice", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "x"}, "webhook": "http://127.0.0.1:9/hook"}, 422, []string{"webhook: loopback and private addresses are refused"}},
		{"webhook to a private network", "alice", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "x"}, "webhook": "https://10.1.2.3/hook"}, 422, []string{"webhook: loopback and private"}},
		{"bad webhook event", "alice", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "x"}, "webhook": "https://1.1.1.1/", "webhook_events_filter": []string{"finished"}}, 422, []string{`webhook_events_filter: "finished"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, b := e.call(t, tt.user, "POST", tt.path, tt.body)
			var body struct {
				Error struct{ Message, Code string }
			}
			json.Unmarshal(b, &body)
			if status != tt.status {
				t.Errorf("status %d (%s), want %d", status, b, tt.status)
			}
			for _, w := range tt.want {
				if !strings.Contains(body.Error.Message, w) {
					t.Errorf("error %q does not say %q", body.Error.Message, w)
				}
			}
		})
	}
	t.Run("the pro plan may ask for more", func(t *testing.T) {
		p := e.create(t, "pro", "demo/echo", map[string]any{"prompt": "x", "size": 1000, "steps": 50}, "Prefer", "wait=10")
		if p.Status != "succeeded" || p.Input["steps"] != float64(50) {
			t.Errorf("pro prediction %s with input %v, want steps 50 kept", p.Status, p.Input)
		}
	})
	t.Run("a plan bound lowers the value instead of refusing", func(t *testing.T) {
		p := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "x", "steps": 50}, "Prefer", "wait=10")
		got, _ := p.Output.(map[string]any)["got"].(map[string]any)
		if p.Input["steps"] != float64(30) || got["steps"] != float64(30) {
			t.Errorf("free user's steps: input %v, upstream got %v; want 30 in both", p.Input["steps"], got["steps"])
		}
	})
	if list := listIDs(t, e, "alice"); len(list) != 1 {
		t.Errorf("alice has %v, want only the accepted prediction (refused submits leave none)", list)
	}
}

// gate is a capacity-1 upstream that records the order jobs reach it and
// holds each until released.
type gate struct {
	mu      sync.Mutex
	started []string
	arrived chan string
	release chan struct{}
}

func newGate() *gate {
	return &gate{arrived: make(chan string, 100), release: make(chan struct{}, 100)}
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var in map[string]any
	_ = json.NewDecoder(r.Body).Decode(&in)
	tag := fmt.Sprint(in["prompt"])
	g.mu.Lock()
	g.started = append(g.started, tag)
	g.mu.Unlock()
	g.arrived <- tag
	select {
	case <-g.release:
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, "%q", "done "+tag)
}

func (g *gate) order() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.started)
}

func TestFairnessOnOneSlot(t *testing.T) { onEngines(t, testFairnessOnOneSlot) }

func testFairnessOnOneSlot(t *testing.T, engine string) {
	g := newGate()
	e := setupOn(t, engine, strings.Replace(models, "free: {max_queued: 3}", "free: {}", 1), g)
	var last pred
	for i := range 6 {
		last = e.create(t, "alice", "demo/echo", map[string]any{"prompt": fmt.Sprint("a", i)})
		if i == 0 {
			if tag := <-g.arrived; tag != "a0" {
				t.Fatalf("first start %s", tag)
			}
		}
	}
	e.create(t, "bob", "demo/echo", map[string]any{"prompt": "b0"})
	e.create(t, "pro", "demo/echo", map[string]any{"prompt": "p0"})
	for range 8 {
		g.release <- struct{}{}
		if len(g.order()) < 8 {
			<-g.arrived
		}
	}
	if _, p := e.streamUntilDone(t, "alice", last); p.Status != "succeeded" {
		t.Fatalf("last job %s", p.Status)
	}
	want := []string{"a0", "p0", "b0", "a1", "a2", "a3", "a4", "a5"}
	if got := g.order(); !slices.Equal(got, want) {
		t.Errorf("start order %v, want %v", got, want)
	}
}

func TestCancelQueued(t *testing.T) { onEngines(t, testCancelQueued) }

func testCancelQueued(t *testing.T, engine string) {
	g := newGate()
	e := setupOn(t, engine, models, g)
	running := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "first"})
	<-g.arrived
	queued := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "second"})
	if queued.Status != "starting" {
		t.Fatalf("queued prediction %s", queued.Status)
	}
	for _, who := range []string{"bob", "pro"} {
		if status, _, _ := e.call(t, who, "POST", "/v1/predictions/"+queued.ID+"/cancel", nil); status != 404 {
			t.Errorf("%s canceling alice's prediction: %d, want 404", who, status)
		}
	}
	status, _, b := e.call(t, "alice", "POST", "/v1/predictions/"+queued.ID+"/cancel", nil)
	var c pred
	json.Unmarshal(b, &c)
	if status != 200 || c.Status != "canceled" || c.StartedAt != nil {
		t.Fatalf("cancel: %d %s", status, b)
	}
	g.release <- struct{}{}
	if _, p := e.streamUntilDone(t, "alice", running); p.Status != "succeeded" {
		t.Fatalf("running job %s", p.Status)
	}
	if got := g.order(); !slices.Equal(got, []string{"first"}) {
		t.Errorf("the upstream saw %v; a canceled job must never reach it", got)
	}
	if r := e.record(t, queued.ID); r.Cost != 0 || r.Units.GPUMillis != 0 {
		t.Errorf("canceled job charged %s (%+v)", r.Cost, r)
	}
}

func TestCancelRunning(t *testing.T) { onEngines(t, testCancelRunning) }

func testCancelRunning(t *testing.T, engine string) {
	g := newGate()
	var e *env
	e = setupOn(t, engine, models, g)
	p := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "long"})
	<-g.arrived
	e.clock.Advance(2 * time.Second)
	status, _, b := e.call(t, "alice", "POST", "/v1/predictions/"+p.ID+"/cancel", nil)
	if status != 200 {
		t.Fatalf("cancel: %d %s", status, b)
	}
	names, done := e.streamUntilDone(t, "alice", p)
	if done.Status != "canceled" || !slices.Contains(names, "done") {
		t.Fatalf("canceled running job: %s, events %v", done.Status, names)
	}
	r := e.record(t, p.ID)
	if r.Outcome != tollgate.ResultCancelled || r.Units.GPUMillis != 2000 || r.Cost != 10_000+2_000 {
		t.Errorf("a job canceled while running is charged what it used: %+v", r)
	}
}

func TestCancelAfter(t *testing.T) { onEngines(t, testCancelAfter) }

func testCancelAfter(t *testing.T, engine string) {
	g := newGate()
	e := setupOn(t, engine, models, g)
	running := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "first"})
	<-g.arrived
	late := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "late"}, "Cancel-After", "30s")
	e.clock.Advance(31 * time.Second)
	if _, p := e.streamUntilDone(t, "alice", late); p.Status != "canceled" {
		t.Fatalf("a job past its Cancel-After is %s", p.Status)
	}
	g.release <- struct{}{}
	e.streamUntilDone(t, "alice", running)
	if got := g.order(); !slices.Equal(got, []string{"first"}) {
		t.Errorf("the upstream saw %v", got)
	}
	if r := e.record(t, late.ID); r.Cost != 0 {
		t.Errorf("expired job charged %s", r.Cost)
	}
}

func TestQueueLimitsAndBudget(t *testing.T) { onEngines(t, testQueueLimitsAndBudget) }

func testQueueLimitsAndBudget(t *testing.T, engine string) {
	g := newGate()
	e := setupOn(t, engine, models, g)
	e.create(t, "alice", "demo/echo", map[string]any{"prompt": "run"})
	<-g.arrived
	for i := range 3 {
		e.create(t, "alice", "demo/echo", map[string]any{"prompt": fmt.Sprint("q", i)})
	}
	status, h, b := e.call(t, "alice", "POST", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "more"}})
	if status != 429 || !strings.Contains(string(b), "queue_full") || h.Get("Retry-After") == "" {
		t.Errorf("fourth queued job: %d %s Retry-After %q, want 429 queue_full with Retry-After", status, b, h.Get("Retry-After"))
	}
	// capped may spend 0.05; each job reserves 0.02 (0.01 + 10 s × 0.001).
	for i := range 2 {
		e.create(t, "capped", "demo/echo", map[string]any{"prompt": fmt.Sprint("c", i)})
	}
	status, _, b = e.call(t, "capped", "POST", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "c2"}})
	if status != 429 || !strings.Contains(string(b), "insufficient_quota") {
		t.Errorf("a job past the budget: %d %s, want 429 insufficient_quota", status, b)
	}
}

func TestIdempotencyKey(t *testing.T) { onEngines(t, testIdempotencyKey) }

func testIdempotencyKey(t *testing.T, engine string) {
	var e *env
	e = setupOn(t, engine, models, echo(func() *clock { return e.clock }))
	first := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "x"}, "Idempotency-Key", "k1")
	again := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "x"}, "Idempotency-Key", "k1")
	if again.ID != first.ID {
		t.Errorf("same key and body: %s then %s, want one prediction", first.ID, again.ID)
	}
	status, _, b := e.call(t, "alice", "POST", "/v1/models/demo/echo/predictions",
		map[string]any{"input": map[string]any{"prompt": "y"}}, "Idempotency-Key", "k1")
	if status != http.StatusConflict {
		t.Errorf("same key, another body: %d %s, want 409", status, b)
	}
	if other := e.create(t, "bob", "demo/echo", map[string]any{"prompt": "x"}, "Idempotency-Key", "k1"); other.ID == first.ID {
		t.Error("another user's key returned alice's prediction")
	}
	if ids := listIDs(t, e, "alice"); len(ids) != 1 {
		t.Errorf("alice has %v, want one prediction", ids)
	}
}

func listIDs(t *testing.T, e *env, user string) []string {
	t.Helper()
	var ids []string
	next := "/v1/predictions?limit=2"
	for next != "" {
		status, _, b := e.call(t, user, "GET", next, nil)
		if status != 200 {
			t.Fatalf("list: %d %s", status, b)
		}
		var page struct {
			Next    *string `json:"next"`
			Results []pred  `json:"results"`
		}
		json.Unmarshal(b, &page)
		for _, p := range page.Results {
			ids = append(ids, p.ID)
		}
		next = ""
		if page.Next != nil {
			next = *page.Next
		}
	}
	return ids
}

func TestOwnPredictionsOnly(t *testing.T) { onEngines(t, testOwnPredictionsOnly) }

func testOwnPredictionsOnly(t *testing.T, engine string) {
	var e *env
	e = setupOn(t, engine, models, echo(func() *clock { return e.clock }))
	var mine []string
	for i := range 5 {
		mine = append(mine, e.create(t, "alice", "demo/echo", map[string]any{"prompt": fmt.Sprint(i)}, "Prefer", "wait").ID)
	}
	bobs := e.create(t, "bob", "demo/echo", map[string]any{"prompt": "b"}, "Prefer", "wait")
	slices.Reverse(mine)
	if got := listIDs(t, e, "alice"); !slices.Equal(got, mine) {
		t.Errorf("alice's pages %v, want %v newest first", got, mine)
	}
	if got := listIDs(t, e, "bob"); !slices.Equal(got, []string{bobs.ID}) {
		t.Errorf("bob lists %v, want only his own", got)
	}
	for _, path := range []string{"/v1/predictions/" + mine[0], "/v1/predictions/" + mine[0] + "/stream"} {
		if status, _, _ := e.call(t, "bob", "GET", path, nil); status != 404 && status != 403 {
			t.Errorf("bob GET %s: %d", path, status)
		}
	}
	if status, _, _ := e.call(t, "bob", "GET", "/v1/predictions/"+mine[0], nil); status != 404 {
		t.Errorf("bob reading alice's prediction: %d, want 404", status)
	}
	if status, _, _ := e.call(t, "nobody", "GET", "/v1/predictions", nil); status != 401 {
		t.Errorf("no credentials: %d, want 401", status)
	}
}

// resultFiles counts the files under the result store.
func resultFiles(t *testing.T, e *env) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(e.dir+"/results", func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// onEngines runs test on SQLite and on PostgreSQL (when
// TOLLGATE_TEST_POSTGRES is set).
func onEngines(t *testing.T, test func(t *testing.T, engine string)) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) { test(t, engine) })
	}
}

// TestRestart: queued jobs survive a restart of the service and run after
// it; a job that was running when the service stopped ends failed; a job
// left processing by a process that died is failed at the next start and
// its upstream slot freed.
func TestRestart(t *testing.T) { onEngines(t, testRestart) }

func testRestart(t *testing.T, engine string) {
	g := newGate()
	e := setupOn(t, engine, models, g)
	running := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "running"})
	<-g.arrived
	queued := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "queued"})
	e.restart(t)
	if p := e.get(t, "alice", running.ID); p.Status != "failed" || p.Error == nil || !strings.Contains(*p.Error, "stopped") {
		t.Errorf("the job running at the stop: %s %v, want failed", p.Status, p.Error)
	}
	if tag := <-g.arrived; tag != "queued" {
		t.Fatalf("after the restart the upstream got %q, want the queued job", tag)
	}
	g.release <- struct{}{}
	if _, p := e.streamUntilDone(t, "alice", queued); p.Status != "succeeded" {
		t.Fatalf("the queued job ended %s", p.Status)
	}

	// A process that died with a job processing: its pick is in the store.
	e.svc.Stop()
	orphan := &tollgate.Job{ID: "orphan0000", Model: "demo/echo", Owner: tollgate.Owner{TenantID: "acme", UserID: "usr_alice"},
		Input: json.RawMessage(`{"prompt":"orphan"}`)}
	if _, _, err := e.jobs.Enqueue(t.Context(), orphan, tollgate.QueueLimits{}); err != nil {
		t.Fatal(err)
	}
	m := e.cfg.JobModel("demo/echo")
	if j, err := e.jobs.Pick(t.Context(), tollgate.PickRequest{Model: m.Name, Upstreams: m.Upstreams, Capacity: 1}); err != nil || j == nil || j.ID != orphan.ID {
		t.Fatalf("Pick = %v, %v", j, err)
	}
	e.startAgain(t)
	if j, _ := e.jobs.JobByID(t.Context(), orphan.ID); j.Status != tollgate.JobFailed {
		t.Errorf("the orphaned job is %s, want failed", j.Status)
	}
	next := e.create(t, "bob", "demo/echo", map[string]any{"prompt": "after"})
	if tag := <-g.arrived; tag != "after" {
		t.Fatalf("the upstream got %q", tag)
	}
	g.release <- struct{}{}
	if _, p := e.streamUntilDone(t, "bob", next); p.Status != "succeeded" {
		t.Errorf("a job after the orphan's slot was freed ended %s", p.Status)
	}
}

// TestMetrics: queue depth per model and running jobs per upstream come
// from the store; wait times and ends are counted.
func TestMetrics(t *testing.T) { onEngines(t, testMetrics) }

func testMetrics(t *testing.T, engine string) {
	g := newGate()
	e := setupOn(t, engine, models, g)
	first := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "run"})
	<-g.arrived
	e.create(t, "alice", "demo/echo", map[string]any{"prompt": "q1"})
	e.create(t, "bob", "demo/echo", map[string]any{"prompt": "q2"})
	up := e.cfg.JobModel("demo/echo").Upstreams[0]
	got := gather(t, e)
	if got[`tollgate_jobs_queued{model="demo/echo"}`] != 2 || got[`tollgate_jobs_running{upstream="`+up+`"}`] != 1 {
		t.Errorf("metrics %v, want 2 queued for demo/echo and 1 running on %s", got, up)
	}
	g.release <- struct{}{}
	e.streamUntilDone(t, "alice", first)
	got = gather(t, e)
	if got[`tollgate_jobs_finished_total{model="demo/echo",status="succeeded"}`] != 1 {
		t.Errorf("finished counter in %v, want 1 succeeded", got)
	}
	if got[`tollgate_jobs_wait_seconds_count{model="demo/echo"}`] < 1 {
		t.Errorf("wait histogram in %v, want the started job", got)
	}
}

// gather returns every sample of the service's registry by name{labels}.
func gather(t *testing.T, e *env) map[string]float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				out[mf.GetName()+"_count{"+strings.Join(labels, ",")+"}"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// replicaTransport marks the calls of one replica.
type replicaTransport struct{ name string }

func (rt replicaTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Replica", rt.name)
	return http.DefaultTransport.RoundTrip(r)
}

// TestTwoReplicas: two services share one PostgreSQL store and pick from
// it; the capacity-1 upstream never runs two jobs at once, the start
// order stays fair, a job is canceled through the replica that did not
// run it, and each job is settled once by the replica that took it.
func TestTwoReplicas(t *testing.T) {
	g := newGate()
	var mu sync.Mutex
	inflight, peak := 0, 0
	byReplica := map[string]int{}
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inflight++
		peak = max(peak, inflight)
		byReplica[r.Header.Get("X-Replica")]++
		mu.Unlock()
		defer func() {
			mu.Lock()
			inflight--
			mu.Unlock()
		}()
		g.ServeHTTP(w, r)
	})
	e := setupOn(t, "postgres", strings.Replace(models, "free: {max_queued: 3}", "free: {}", 1), counted)
	e.svc.Stop()
	for _, name := range []string{"one", "two"} {
		opts := e.opts
		opts.Cluster = true
		opts.Metrics = nil
		opts.Backends = map[string]tollgate.Backend{"demo/echo": &jobs.HTTPBackend{Path: "/run", Client: &http.Client{Transport: replicaTransport{name}}}}
		svc, err := jobs.New(e.cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Stop)
		if name == "one" {
			e.svc = svc // the API (and so every submit and cancel) is replica one's
			e.mu.Lock()
			e.current = e.mux()
			e.mu.Unlock()
		}
	}

	var ids []string
	for i := range 6 {
		ids = append(ids, e.create(t, "alice", "demo/echo", map[string]any{"prompt": fmt.Sprint("a", i)}).ID)
		if i == 0 {
			<-g.arrived
		}
	}
	ids = append(ids, e.create(t, "bob", "demo/echo", map[string]any{"prompt": "b0"}).ID)
	ids = append(ids, e.create(t, "pro", "demo/echo", map[string]any{"prompt": "p0"}).ID)
	for range 7 {
		g.release <- struct{}{}
		<-g.arrived
	}
	g.release <- struct{}{}
	// The upstream runs one job at a time, so when alice's last ends every
	// job has.
	if _, p := e.streamUntilDone(t, "alice", e.get(t, "alice", ids[5])); p.Status != "succeeded" {
		t.Fatalf("alice's last job ended %s", p.Status)
	}
	want := []string{"a0", "p0", "b0", "a1", "a2", "a3", "a4", "a5"}
	if got := g.order(); !slices.Equal(got, want) {
		t.Errorf("start order over two replicas %v, want %v", got, want)
	}

	// Cancel running jobs until one ran on replica two: the cancel goes to
	// replica one, which must reach it through the store.
	for i := 0; ; i++ {
		p := e.create(t, "alice", "demo/echo", map[string]any{"prompt": fmt.Sprint("c", i)})
		<-g.arrived
		status, _, b := e.call(t, "alice", "POST", "/v1/predictions/"+p.ID+"/cancel", nil)
		if status != 200 {
			t.Fatalf("cancel: %d %s", status, b)
		}
		if _, done := e.streamUntilDone(t, "alice", p); done.Status != "canceled" {
			t.Fatalf("canceled running job ended %s", done.Status)
		}
		ids = append(ids, p.ID)
		mu.Lock()
		two := byReplica["two"]
		mu.Unlock()
		if two > 0 || i == 20 {
			break
		}
	}
	mu.Lock()
	t.Logf("jobs per replica %v, peak %d at once", byReplica, peak)
	if peak != 1 {
		t.Errorf("the capacity-1 upstream ran %d jobs at once", peak)
	}
	if byReplica["one"] == 0 || byReplica["two"] == 0 {
		t.Errorf("jobs per replica %v: both should have picked", byReplica)
	}
	mu.Unlock()
	for _, id := range ids {
		r := e.record(t, id)
		if !r.Settled || (r.Outcome != tollgate.ResultOK && r.Outcome != tollgate.ResultCancelled) {
			t.Errorf("job %s: record %+v, want settled once by the replica that took it", id, r)
		}
	}
}

// hook is a webhook receiver that answers 503 to its first request, so
// every test sees a retry, and records the rest.
type hook struct {
	mu    sync.Mutex
	first bool
	got   chan *http.Request
	body  chan []byte
}

func newHook() *hook { return &hook{got: make(chan *http.Request, 100), body: make(chan []byte, 100)} }

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	failed := !h.first
	h.first = true
	h.mu.Unlock()
	if failed {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	h.got <- r
	h.body <- b
}

// next returns the next delivery's headers and prediction.
func (h *hook) next(t *testing.T) (http.Header, []byte, pred) {
	t.Helper()
	r, b := <-h.got, <-h.body
	var p pred
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("webhook body %s: %v", b, err)
	}
	return r.Header, b, p
}

// verifySignature checks a delivery per Standard Webhooks.
func verifySignature(t *testing.T, secret string, h http.Header, body []byte) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q is not whsec_<base64>", secret)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", h.Get("webhook-id"), h.Get("webhook-timestamp"), body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if h.Get("webhook-signature") != want || h.Get("webhook-id") == "" {
		t.Errorf("webhook-signature %q, want %q", h.Get("webhook-signature"), want)
	}
	ts, _ := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
	if d := time.Since(time.Unix(ts, 0)); d < -time.Minute || d > time.Minute {
		t.Errorf("webhook-timestamp %d is not now", ts)
	}
}

func TestWebhooks(t *testing.T) {
	var e *env
	e = setup(t, "webhook_allow_private: true\n"+models, echo(func() *clock { return e.clock }))
	e.opts.WebhookBackoff = time.Millisecond
	e.restart(t)
	h := newHook()
	receiver := httptest.NewServer(h)
	t.Cleanup(receiver.Close)
	var secret struct{ Key string }
	_, _, b := e.call(t, "alice", "GET", "/v1/webhooks/default/secret", nil)
	json.Unmarshal(b, &secret)
	var bobs struct{ Key string }
	_, _, b = e.call(t, "bob", "GET", "/v1/webhooks/default/secret", nil)
	json.Unmarshal(b, &bobs)
	if bobs.Key == secret.Key || bobs.Key == "" {
		t.Errorf("alice and bob have the secrets %q and %q, want each their own", secret.Key, bobs.Key)
	}

	status, _, b := e.call(t, "alice", "POST", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "hook"},
		"webhook": receiver.URL + "/hook", "webhook_events_filter": []string{"completed"}})
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, b)
	}
	var only pred
	json.Unmarshal(b, &only)
	hd, body, p := h.next(t) // the first attempt failed: this is the retry
	if p.ID != only.ID || p.Status != "succeeded" {
		t.Errorf("completed webhook carries %s %s, want %s succeeded", p.ID, p.Status, only.ID)
	}
	verifySignature(t, secret.Key, hd, body)

	var all pred
	_, _, b = e.call(t, "alice", "POST", "/v1/models/demo/echo/predictions", map[string]any{"input": map[string]any{"prompt": "all"},
		"webhook": receiver.URL + "/hook"})
	json.Unmarshal(b, &all)
	var statuses []string
	for {
		hd, body, p := h.next(t)
		verifySignature(t, secret.Key, hd, body)
		if p.ID == only.ID {
			t.Errorf("a %s event of a job that asked only for completed", p.Status)
			continue
		}
		statuses = append(statuses, p.Status)
		if p.Status == "succeeded" {
			break
		}
	}
	if !slices.Equal(statuses, []string{"processing", "succeeded"}) {
		t.Errorf("events of a job with every event: %v, want start (processing) then completed", statuses)
	}
}

// pngURI returns a w×h PNG as a data: URI.
func pngURI(t *testing.T, w, h int) string {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
}

func TestFileInputs(t *testing.T) { onEngines(t, testFileInputs) }

func testFileInputs(t *testing.T, engine string) {
	var e *env
	e = setupOn(t, engine, `
jobs:
  - name: photo/restore
    backend: http
    upstreams: [UPSTREAM]
    path: /run
    inputs:
      photo: {type: image, required: true, max_size: 64KiB}
      prompt: {type: string}
    rules:
      - expr: 'claims.plan == "pro" || media.photo.width <= 32'
        message: "free plan: photos up to 32 px wide"
`, echo(func() *clock { return e.clock }))
	small := pngURI(t, 16, 16)
	p := e.create(t, "alice", "photo/restore", map[string]any{"photo": small}, "Prefer", "wait")
	got, _ := p.Output.(map[string]any)["got"].(map[string]any)
	if p.Status != "succeeded" || got["photo"] != small {
		t.Errorf("prediction %s; the upstream got %.40v, want the data: URI", p.Status, got["photo"])
	}
	big := pngURI(t, 64, 64)
	if p := e.create(t, "pro", "photo/restore", map[string]any{"photo": big}, "Prefer", "wait"); p.Status != "succeeded" {
		t.Errorf("pro prediction with a 64 px photo: %s", p.Status)
	}
	t.Run("uploads", func(t *testing.T) {
		raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(small, "data:image/png;base64,"))
		file := upload(t, e, "alice", raw)
		if file.ContentType != "image/png" || file.Size != int64(len(raw)) || !strings.HasPrefix(file.URLs["get"], e.URL+"/v1/files/") {
			t.Fatalf("upload %+v", file)
		}
		p := e.create(t, "alice", "photo/restore", map[string]any{"photo": file.URLs["get"]}, "Prefer", "wait")
		got, _ := p.Output.(map[string]any)["got"].(map[string]any)
		if p.Status != "succeeded" || got["photo"] != small {
			t.Errorf("prediction from an upload: %s; the upstream got %.40v, want the file as a data: URI", p.Status, got["photo"])
		}
		status, _, b := e.call(t, "bob", "POST", "/v1/models/photo/restore/predictions", map[string]any{"input": map[string]any{"photo": file.URLs["get"]}})
		if status != 422 || !strings.Contains(string(b), "input.photo: no such file of yours") {
			t.Errorf("bob using alice's upload: %d %s", status, b)
		}
		if status, _, _ := e.call(t, "bob", "GET", "/v1/files/"+file.ID, nil); status != 404 {
			t.Errorf("bob reading alice's upload: %d, want 404", status)
		}
		if status, _, _ := e.call(t, "bob", "DELETE", "/v1/files/"+file.ID, nil); status != 404 {
			t.Errorf("bob deleting alice's upload: %d, want 404", status)
		}
		if status, _, _ := e.call(t, "alice", "GET", "/v1/files/"+file.ID, nil); status != 200 {
			t.Errorf("alice reading her upload: %d", status)
		}
		if status, _, _ := e.call(t, "alice", "DELETE", "/v1/files/"+file.ID, nil); status != 204 {
			t.Errorf("alice deleting her upload: %d", status)
		}
		if status, _, _ := e.call(t, "alice", "GET", "/v1/files/"+file.ID, nil); status != 404 {
			t.Errorf("a deleted upload: %d, want 404", status)
		}
		old := upload(t, e, "alice", raw)
		e.clock.Advance(25 * time.Hour)
		if status, _, _ := e.call(t, "alice", "GET", "/v1/files/"+old.ID, nil); status != 404 {
			t.Errorf("an upload after 24 h: %d, want 404", status)
		}
	})
	huge := "data:image/png;base64," + base64.StdEncoding.EncodeToString(append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 70<<10)...))
	for _, c := range []struct {
		name   string
		photo  any
		status int
		want   string
	}{
		{"a rule on the image's width", big, 403, "free plan: photos up to 32 px wide"},
		{"not an image", "data:image/png;base64," + base64.StdEncoding.EncodeToString([]byte("hello, just text")), 422, "input.photo: the content is text/plain; charset=utf-8, not an image"},
		{"a URL", "https://example.com/cat.png", 422, "input.photo: URLs are not fetched"},
		{"too large", huge, 422, "input.photo: larger than 64KiB"},
		{"not base64", "data:image/png,abc", 422, "input.photo: want a base64 data: URI"},
		{"not a string", 5, 422, "input.photo: want a data: URI"},
	} {
		status, _, b := e.call(t, "alice", "POST", "/v1/models/photo/restore/predictions", map[string]any{"input": map[string]any{"photo": c.photo}})
		if status != c.status || !strings.Contains(string(b), c.want) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, status, b, c.status, c.want)
		}
	}
}

type uploaded struct {
	ID          string            `json:"id"`
	ContentType string            `json:"content_type"`
	Size        int64             `json:"size"`
	URLs        map[string]string `json:"urls"`
}

// upload posts data to /v1/files as user, as the replicate clients do.
func upload(t *testing.T, e *env, user string, data []byte) uploaded {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("content", "photo.png")
	fw.Write(data)
	mw.WriteField("metadata", `{"kind":"test"}`)
	mw.Close()
	req, _ := http.NewRequest("POST", e.URL+"/v1/files", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("X-Test-User", user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var f uploaded
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &f) != nil {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	return f
}

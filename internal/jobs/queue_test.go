package jobs_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/jobs"
	"github.com/tollgate/tollgate/internal/tollgate"
)

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

func TestDisabledTenantsQueuedJobsDoNotRun(t *testing.T) {
	onEngines(t, testDisabledTenantsQueuedJobsDoNotRun)
}

// testDisabledTenantsQueuedJobsDoNotRun: alice's tenant is disabled while
// one of her jobs runs and another waits. The running one finishes; the
// waiting one fails when its turn comes, with a message saying why,
// never reaching the upstream and costing nothing; a job of another
// tenant runs.
func testDisabledTenantsQueuedJobsDoNotRun(t *testing.T, engine string) {
	g := newGate()
	e := setupOn(t, engine, models, g)
	running := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "first"})
	<-g.arrived
	queued := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "second"})
	other := e.create(t, "pro", "demo/echo", map[string]any{"prompt": "other"})
	e.mu.Lock()
	e.disabled = map[string]bool{"acme": true}
	e.mu.Unlock()
	g.release <- struct{}{}
	if _, p := e.streamUntilDone(t, "alice", running); p.Status != "succeeded" {
		t.Fatalf("the running job: %s", p.Status)
	}
	if tag := <-g.arrived; tag != "other" {
		t.Fatalf("after the running job the upstream got %q, want the other tenant's job", tag)
	}
	g.release <- struct{}{}
	g.release <- struct{}{} // alice's queued job would not wait at the gate
	if _, p := e.streamUntilDone(t, "pro", other); p.Status != "succeeded" {
		t.Fatalf("the other tenant's job: %s", p.Status)
	}
	_, p := e.streamUntilDone(t, "alice", queued)
	if p.Status != "failed" || p.Error == nil || *p.Error != jobs.OwnerDisabledMessage {
		t.Fatalf("the queued job of the disabled tenant: %s %v, want failed with %q", p.Status, p.Error, jobs.OwnerDisabledMessage)
	}
	if got := g.order(); !slices.Equal(got, []string{"first", "other"}) {
		t.Errorf("the upstream saw %v", got)
	}
	if r := e.record(t, queued.ID); r.Cost != 0 || r.Outcome != tollgate.ResultRejected {
		t.Errorf("the job that never ran: %s, cost %s, want rejected at 0", r.Outcome, r.Cost)
	}
}

// TestDisabledTenantsResultLinksAreRefused: a result link that worked
// is refused (403) once its job's tenant is disabled, and works again
// once it is enabled. (A job's stream link still tells its end, such as
// why a queued job did not run.)
func TestDisabledTenantsResultLinksAreRefused(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /text", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "a plain answer")
	})
	e := setup(t, `
jobs:
  - {name: t/text, backend: http, upstreams: [UPSTREAM], path: /text}
`, mux)
	p := e.create(t, "alice", "t/text", nil, "Prefer", "wait")
	link, _ := p.Output.(string)
	if p.Status != "succeeded" || link == "" {
		t.Fatalf("the job: %s %v", p.Status, p.Output)
	}
	for _, c := range []struct {
		disabled bool
		want     int
	}{{false, 200}, {true, 403}, {false, 200}} {
		e.mu.Lock()
		e.disabled = map[string]bool{"acme": c.disabled}
		e.mu.Unlock()
		resp, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("the result link with the tenant disabled=%v: %d, want %d", c.disabled, resp.StatusCode, c.want)
		}
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

// TestRestart: queued jobs survive a restart of the service and run after
// it; a job that was running when the service stopped ends failed; a job
// left processing, sent to its upstream, by a process that died is failed
// at the next start and its upstream slot freed.
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
	// The stopped service left no transaction open (a pick under way at
	// the stop ran to its end), so no lane is locked: one pick finds the
	// orphan, also on PostgreSQL where a pick skips locked rows.
	picked, err := e.jobs.Pick(t.Context(), tollgate.PickRequest{Model: m.Name, Upstreams: m.Upstreams, Capacity: 1})
	if err != nil || picked == nil || picked.ID != orphan.ID {
		t.Fatalf("Pick = %v, %v; want the orphan", picked, err)
	}
	if err := e.jobs.Dispatch(t.Context(), orphan.ID, e.clock.Now()); err != nil { // it was sent: it may have run
		t.Fatal(err)
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
// it, while a third that runs no jobs takes every submit and cancel; the
// capacity-1 upstream never runs two jobs at once, the start order stays
// fair, a running job is canceled through a replica that does not run
// it, and every job is settled once, by the replica that ended it.
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
	var replicas []*jobs.Service
	for _, name := range []string{"front", "one", "two"} {
		opts := e.opts
		opts.Cluster, opts.SubmitOnly, opts.Metrics = true, name == "front", nil
		opts.Backends = map[string]tollgate.Backend{"demo/echo": &jobs.HTTPBackend{Path: "/run", UpstreamCall: jobs.UpstreamCall{Client: &http.Client{Transport: replicaTransport{name}}}}}
		svc, err := jobs.New(e.cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Stop)
		replicas = append(replicas, svc)
		if name == "front" {
			e.svc = svc // the API: every submit and cancel goes here
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

	// A running job, canceled through the front, which does not run it.
	p := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "cancel me"})
	<-g.arrived
	if status, _, b := e.call(t, "alice", "POST", "/v1/predictions/"+p.ID+"/cancel", nil); status != 200 {
		t.Fatalf("cancel: %d %s", status, b)
	}
	if _, done := e.streamUntilDone(t, "alice", p); done.Status != "canceled" {
		t.Fatalf("canceled running job ended %s", done.Status)
	}
	ids = append(ids, p.ID)
	mu.Lock()
	t.Logf("jobs per replica %v, peak %d at once", byReplica, peak)
	if peak != 1 {
		t.Errorf("the capacity-1 upstream ran %d jobs at once", peak)
	}
	if byReplica["front"] != 0 || byReplica["one"]+byReplica["two"] != 9 {
		t.Errorf("jobs per replica %v: want all 9 run by one and two, none by the front", byReplica)
	}
	mu.Unlock()
	for _, svc := range replicas { // each settles the jobs it ended before it stops
		svc.Stop()
	}
	for _, id := range ids {
		r := e.record(t, id)
		if !r.Settled || (r.Outcome != tollgate.ResultOK && r.Outcome != tollgate.ResultCancelled) {
			t.Errorf("job %s: record %+v, want settled once by the replica that ended it", id, r)
		}
	}
}

// TestQueuePosition: a queued prediction says how many jobs start before
// it under the fair order, on create and get; a running one says nothing;
// the start order then matches the positions.
func TestQueuePosition(t *testing.T) { onEngines(t, testQueuePosition) }

func testQueuePosition(t *testing.T, engine string) {
	g := newGate()
	e := setupOn(t, engine, models, g)
	running := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "a0"})
	<-g.arrived
	a1 := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "a1"})
	a2 := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "a2"})
	b0 := e.create(t, "bob", "demo/echo", map[string]any{"prompt": "b0"})
	if b0.QueuePos == nil || *b0.QueuePos != 0 {
		t.Errorf("bob's first job on create: queue_position %v, want 0 (alice already has a job running)", b0.QueuePos)
	}
	want := map[string]int{a1.ID: 1, a2.ID: 2, b0.ID: 0}
	users := map[string]string{a1.ID: "alice", a2.ID: "alice", b0.ID: "bob"}
	for id, n := range want {
		if p := e.get(t, users[id], id); p.QueuePos == nil || *p.QueuePos != n {
			t.Errorf("%s: queue_position %v, want %d", p.Input["prompt"], p.QueuePos, n)
		}
	}
	if p := e.get(t, "alice", running.ID); p.QueuePos != nil {
		t.Errorf("a running job has queue_position %d", *p.QueuePos)
	}
	for range 4 {
		g.release <- struct{}{}
	}
	e.streamUntilDone(t, "alice", a2)
	if got := g.order(); !slices.Equal(got, []string{"a0", "b0", "a1", "a2"}) {
		t.Errorf("start order %v, want a0 b0 a1 a2 as the positions said", got)
	}
	if p := e.get(t, "bob", b0.ID); p.QueuePos != nil {
		t.Errorf("an ended job has queue_position %d", *p.QueuePos)
	}
}

// TestConcurrentCreatesAgainstBudget: 30 creates at once against a budget
// for 10 jobs (each reserves 0.02 of 0.20): exactly 10 are accepted, the
// rest are 429 insufficient_quota, and once they ran the ledger holds one
// settled record per accepted job whose costs sum to what the user spent.
func TestConcurrentCreatesAgainstBudget(t *testing.T) {
	onEngines(t, testConcurrentCreatesAgainstBudget)
}

func testConcurrentCreatesAgainstBudget(t *testing.T, engine string) {
	g := newGate()
	e := setupOn(t, engine, models, g)
	var mu sync.Mutex
	var accepted []pred
	var quota, other int
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			status, _, b := e.call(t, "tenjobs", "POST", "/v1/models/demo/echo/predictions",
				map[string]any{"input": map[string]any{"prompt": fmt.Sprint("j", i)}})
			mu.Lock()
			defer mu.Unlock()
			var p pred
			switch {
			case status == http.StatusCreated && json.Unmarshal(b, &p) == nil:
				accepted = append(accepted, p)
			case status == http.StatusTooManyRequests && strings.Contains(string(b), "insufficient_quota"):
				quota++
			default:
				other++
				t.Errorf("create: %d %s", status, b)
			}
		})
	}
	wg.Wait()
	if len(accepted) != 10 || quota != 20 || other != 0 {
		t.Fatalf("accepted %d, insufficient_quota %d, other %d; want 10, 20, 0", len(accepted), quota, other)
	}
	for range accepted {
		g.release <- struct{}{}
	}
	for _, p := range accepted {
		if _, done := e.streamUntilDone(t, "tenjobs", p); done.Status != "succeeded" {
			t.Fatalf("an accepted job ended %s", done.Status)
		}
	}
	var sum tollgate.Money
	for _, p := range accepted {
		r := e.record(t, p.ID)
		if !r.Settled || r.Cost <= 0 {
			t.Errorf("job %s: settled %v cost %s, want settled at a price", p.ID, r.Settled, r.Cost)
		}
		sum += r.Cost
	}
	rows, err := e.ledger.Usage(t.Context(), tollgate.UsageQuery{UserID: "usr_ten"})
	if err != nil || len(rows) != 1 {
		t.Fatalf("Usage = %v, %v", rows, err)
	}
	limit, _ := tollgate.ParseMoney("0.20")
	if rows[0].Requests != 10 || rows[0].Cost != sum || rows[0].InFlight != 0 || sum > limit {
		t.Errorf("ledger: %d records costing %s (%d open), want 10 costing %s within %s", rows[0].Requests, rows[0].Cost, rows[0].InFlight, sum, limit)
	}
}

// TestFailedJobIsChargedItsGPUTime: a job the upstream fails after two
// seconds of work is charged those GPU seconds, as a route's upstream
// error is, and not its per-request price.
func TestFailedJobIsChargedItsGPUTime(t *testing.T) {
	var e *env
	e = setup(t, `
jobs:
  - {name: t/fail, backend: http, upstreams: [UPSTREAM], path: /fail, price: {per_request: "0.01", per_gpu_second: "0.001"}}
`, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.clock.Advance(2 * time.Second)
		http.Error(w, "out of memory", http.StatusInternalServerError)
	}))
	p := e.create(t, "alice", "t/fail", nil, "Prefer", "wait")
	if p.Status != "failed" {
		t.Fatalf("the job: %s", p.Status)
	}
	if r := e.record(t, p.ID); r.Outcome != tollgate.ResultUpstreamError || r.Units.GPUMillis != 2000 || r.Cost != 2_000 {
		t.Errorf("the failed job: %s, %d GPU ms, cost %s; want upstream_error, 2000, 0.002", r.Outcome, r.Units.GPUMillis, r.Cost)
	}
}

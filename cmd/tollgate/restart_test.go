package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/comfytest"
	"github.com/tollgate/tollgate/internal/meter"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// prediction is the part of a prediction the restart tests read.
type prediction struct {
	ID      string
	Status  string
	Output  any
	Error   *string
	Metrics struct {
		PredictTime float64 `json:"predict_time"`
	}
}

// predict creates a prediction of model as the owner of key.
func (g *testGateway) predict(key, model, input string) prediction {
	g.t.Helper()
	resp, body := g.do("POST", "/v1/models/"+model+"/predictions", key, `{"input": `+input+`}`)
	var p prediction
	if resp.StatusCode != 201 || json.Unmarshal(body, &p) != nil {
		g.t.Fatalf("create %s: %d %s", model, resp.StatusCode, body)
	}
	return p
}

// prediction returns a prediction, waiting on its event stream until it
// ended.
func (g *testGateway) prediction(key, id string) prediction {
	g.t.Helper()
	waitEnded(g.t, g, key, id)
	_, body := g.do("GET", "/v1/predictions/"+id, key, "")
	var p prediction
	if err := json.Unmarshal(body, &p); err != nil {
		g.t.Fatalf("prediction %s: %s", id, body)
	}
	return p
}

// ledgerOf returns the settled records of ids in the export, each once,
// failing the test when one is missing or exported more than once.
func (g *testGateway) ledgerOf(ids ...string) map[string]meter.EventData {
	g.t.Helper()
	for _, id := range ids {
		g.exported(id) // waits for its settlement
	}
	out := map[string]meter.EventData{}
	sc := bufio.NewScanner(strings.NewReader(g.mustCLI("export")))
	sc.Buffer(nil, 1<<20)
	count := map[string]int{}
	for sc.Scan() {
		var ev meter.CloudEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			g.t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		count[ev.ID]++
		out[ev.ID] = ev.Data
	}
	for _, id := range ids {
		if count[id] != 1 {
			g.t.Errorf("job %s is %d times in the ledger, want once", id, count[id])
		}
	}
	return out
}

// wantSpendIsLedger checks that what key's owner has committed against
// their budget, and their usage report, come to the ledger's costs of
// ids, with nothing left in flight. The budget counter is settled just
// after the ledger: it is read until it agrees, for a few seconds.
func (g *testGateway) wantSpendIsLedger(key string, ledger map[string]meter.EventData, ids ...string) {
	g.t.Helper()
	var sum tollgate.Money
	for _, id := range ids {
		c, err := tollgate.ParseMoney(ledger[id].Cost)
		if err != nil {
			g.t.Fatalf("cost of %s: %v", id, err)
		}
		sum += c
	}
	var me struct {
		Budget []meter.BudgetState `json:"budget"`
	}
	var rep meter.UsageReport
	if !eventually(5*time.Second, func() bool {
		_, body := g.do("GET", "/v1/me", key, "")
		if err := json.Unmarshal(body, &me); err != nil || len(me.Budget) == 0 {
			g.t.Fatalf("GET /v1/me: %s", body)
		}
		_, body = g.do("GET", "/v1/me/usage", key, "")
		if err := json.Unmarshal(body, &rep); err != nil {
			g.t.Fatalf("GET /v1/me/usage: %s", body)
		}
		return me.Budget[0].Committed == sum.String() && rep.Total.Cost == sum.String() && rep.Total.InFlight == 0
	}) {
		g.t.Errorf("budget committed %s, usage total %s with %d in flight; want the ledger's %s and none in flight",
			me.Budget[0].Committed, rep.Total.Cost, rep.Total.InFlight, sum)
	}
}

// jobHandle waits until the store holds the upstream's id of a job.
func (g *testGateway) jobHandle(id string) string {
	g.t.Helper()
	var line struct{ Handle string }
	if !eventually(10*time.Second, func() bool {
		out, err := g.cli("jobs", "show", id)
		return err == nil && json.Unmarshal([]byte(out), &line) == nil && line.Handle != ""
	}) {
		g.t.Fatalf("job %s has no upstream handle", id)
	}
	return line.Handle
}

// TestSIGKILLWithJobs kills a real gateway process with SIGKILL while an
// http job runs, a ComfyUI job runs and two http jobs wait, and restarts
// it on the same store: the running http job is failed at no charge (its
// upstream call died with the process), the ComfyUI job is re-attached by
// its prompt id and succeeds with its outputs and ComfyUI's own run time,
// the queued jobs run in order, one of them canceled after the restart at
// no charge; each job is in the ledger once, and what the budget holds
// equals the ledger.
func TestSIGKILLWithJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("testing.Short: skipping the SIGKILL test")
	}
	up, upURL := newSlot(t)
	comfy, photoModel := heldComfy(t)
	g, addr := childGateway(t, fmt.Sprintf(`server: {access_log: false}
protection: {ip_rate_limit: 100000/s, login_rate_limit: 1000/m}
metering: {unknown_charge: reserved}
roles:
  user: {scopes: [jobs]}
plans:
  paid: {budget: {amount: "5.00", period: month}}
jobs:
  - name: test/slot
    backend: http
    upstreams: [%s]
    capacity: 1
    timeout: 1m
    inputs:
      prompt: {type: string, required: true}
    price: {per_request: "0.01", per_gpu_second: "0.001"}
`, upURL)+photoModel)
	child := startChild(t, g.Config, addr)
	key := g.userKey("ann", "paid")
	running := g.predict(key, "test/slot", `{"prompt": "running"}`)
	if got := <-up.arrived; got != "running" {
		t.Fatalf("the upstream got %q first", got)
	}
	photo, handle := g.startPhoto(key, comfy)
	queued := g.predict(key, "test/slot", `{"prompt": "queued"}`)
	canceled := g.predict(key, "test/slot", `{"prompt": "canceled"}`)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()

	startChild(t, g.Config, addr)
	if p := g.prediction(key, running.ID); p.Status != "failed" || p.Error == nil || !strings.Contains(*p.Error, "restarted") {
		t.Errorf("the http job running at the kill is %s (%v), want failed", p.Status, p.Error)
	}
	if got := <-up.arrived; got != "queued" {
		t.Fatalf("after the restart the upstream got %q, want the queued job", got)
	}
	resp, body := g.do("POST", "/v1/predictions/"+canceled.ID+"/cancel", key, "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"canceled"`) {
		t.Fatalf("cancel after the restart: %d %s", resp.StatusCode, body)
	}
	up.release <- struct{}{}
	g.wantReattached(key, comfy, photo.ID, handle)
	if p := g.prediction(key, queued.ID); p.Status != "succeeded" {
		t.Errorf("the queued job is %s, want succeeded", p.Status)
	}

	ids := []string{running.ID, photo.ID, queued.ID, canceled.ID}
	ledger := g.ledgerOf(ids...)
	for id, want := range map[string]struct {
		outcome string
		free    bool
	}{running.ID: {"upstream_error", true}, canceled.ID: {"rejected", true}, queued.ID: {"ok", false}, photo.ID: {"ok", false}} {
		got := ledger[id]
		if got.Outcome != want.outcome || (got.Cost == "0.000000") != want.free {
			t.Errorf("ledger record of %s: %s at %s; want %s, free %v", id, got.Outcome, got.Cost, want.outcome, want.free)
		}
	}
	g.wantSpendIsLedger(key, ledger, ids...)
}

// heldComfy starts a ComfyUI emulator that holds each prompt until
// released, and returns it with the config of a job model photo/ddcolor
// on it, an item of the jobs list.
func heldComfy(t *testing.T) (*comfytest.Server, string) {
	t.Helper()
	comfy := comfytest.New(t, comfytest.Options{Hold: true})
	wf, _ := json.Marshal(comfytest.DDColorPrompt("x.png", "ddcolor", 512))
	wfPath := filepath.Join(t.TempDir(), "ddcolor.json")
	if err := os.WriteFile(wfPath, wf, 0o600); err != nil {
		t.Fatal(err)
	}
	return comfy, `  - name: photo/ddcolor
    backend: comfyui
    upstreams: [` + comfy.URL + `]
    capacity: 1
    timeout: 1m
    workflow: ` + wfPath + `
    inputs:
      image: {type: image, node: "1", field: image, required: true}
    price: {per_request: "0.02", per_gpu_second: "0.001"}
`
}

// startPhoto creates a photo/ddcolor prediction and waits until ComfyUI
// runs its prompt and the store holds the prompt id.
func (g *testGateway) startPhoto(key string, comfy *comfytest.Server) (prediction, string) {
	g.t.Helper()
	image := "data:image/png;base64," + base64.StdEncoding.EncodeToString(comfytest.PNG(20, 10))
	photo := g.predict(key, "photo/ddcolor", `{"image": "`+image+`"}`)
	handle := g.jobHandle(photo.ID)
	if err := comfy.WaitHeld(g.t.Context(), handle); err != nil {
		g.t.Fatal(err)
	}
	return photo, handle
}

// wantReattached lets ComfyUI finish the prompt handle and checks that
// the prediction id, re-attached to it, succeeded with its output and
// ComfyUI's own run time, and that ComfyUI ran it once.
func (g *testGateway) wantReattached(key string, comfy *comfytest.Server, id, handle string) {
	g.t.Helper()
	comfy.Release(handle)
	ex, err := comfy.WaitDone(g.t.Context(), handle)
	if err != nil {
		g.t.Fatal(err)
	}
	p := g.prediction(key, id)
	if p.Status != "succeeded" || p.Output == nil || math.Round(p.Metrics.PredictTime*1000) != float64(ex.End.Sub(ex.Start).Milliseconds()) {
		g.t.Errorf("the re-attached ComfyUI job is %s with output %v and predict_time %v, want succeeded with ComfyUI's %v",
			p.Status, p.Output, p.Metrics.PredictTime, ex.End.Sub(ex.Start))
	}
	if n := len(comfy.Executions()); n != 1 {
		g.t.Errorf("ComfyUI ran %d prompts, want the one job once", n)
	}
}

// paidSlotConfig is jobsConfig with a plan paid of a 5.00 monthly
// budget.
func paidSlotConfig(upstream string) string {
	return strings.Replace(jobsConfig(upstream), "  pro: {priority: 10}",
		"  pro: {priority: 10}\n  paid: {budget: {amount: \"5.00\", period: month}}", 1)
}

// submitFour makes a user of plan paid and submits four jobs j0..j3 of
// test/slot through g, waiting until j0 reached the upstream.
func submitFour(t *testing.T, g *testGateway, up *slot) (key string, ids []string) {
	t.Helper()
	key = g.userKey("ann", "paid")
	for i := range 4 {
		ids = append(ids, g.predict(key, "test/slot", fmt.Sprintf(`{"prompt": "j%d"}`, i)).ID)
	}
	if got := <-up.arrived; got != "j0" {
		t.Fatalf("the upstream got %q first", got)
	}
	return key, ids
}

// TestClusterJobsSettleOnceWhenAReplicaStops: on two replicas sharing
// PostgreSQL and Redis, jobs are submitted to one that then stops; a
// replica started after it reconciles the stopped one's usage records
// but leaves its jobs' open. The other replicas run the queued jobs, a
// queued one is canceled on two replicas at once and costs nothing, each
// job is in the ledger once, and the shared budget holds what the
// ledger says.
func TestClusterJobsSettleOnceWhenAReplicaStops(t *testing.T) {
	up, upURL := newSlot(t)
	yaml := clusterYAML(t, paidSlotConfig(upURL)+"metering: {unknown_charge: reserved}\n"+
		"protection: {ip_rate_limit: 100000/s, login_rate_limit: 1000/m, replicas: 3}\n")
	a, b := setup(t, yaml), setup(t, yaml)
	key, ids := submitFour(t, a, up)
	a.stop() // j0 ends failed if a ran it; the others stay queued
	c := setup(t, yaml)
	last := ids[3]
	var wg sync.WaitGroup
	for _, g := range []*testGateway{b, c} {
		wg.Go(func() {
			resp, body := g.do("POST", "/v1/predictions/"+last+"/cancel", key, "")
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"canceled"`) {
				t.Errorf("cancel on a running replica: %d %s", resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	for range 3 {
		up.release <- struct{}{}
	}
	for _, id := range ids[1:3] {
		waitStatus(t, b, key, id, "succeeded")
	}
	if st := waitEnded(t, c, key, ids[0]); st != "succeeded" && st != "failed" {
		t.Errorf("the job running at the stop is %s", st)
	}
	ledger := c.ledgerOf(ids...)
	for _, id := range ids {
		if ledger[id].Outcome == tollgate.ResultUnknown {
			t.Errorf("job %s was reconciled as unknown, not settled by its end", id)
		}
	}
	if got := ledger[last]; got.Outcome != tollgate.ResultRejected || got.Cost != "0.000000" {
		t.Errorf("the job canceled while queued: %s at %s, want rejected at no cost", got.Outcome, got.Cost)
	}
	c.wantSpendIsLedger(key, ledger, ids...)
}

// TestClusterSIGKILLWithJobs kills, with SIGKILL, a replica process that
// runs an http job and a ComfyUI job and took three more, beside a
// replica sharing PostgreSQL and Redis: once the killed replica's lease
// lapsed, the other fails its running http job at no charge, re-attaches
// the ComfyUI job by its prompt id and runs the queued ones, one canceled
// at no charge; each job is in the ledger once and never reconciled as
// unknown, and the shared budget holds what the ledger says.
func TestClusterSIGKILLWithJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("testing.Short: skipping the SIGKILL test")
	}
	up, upURL := newSlot(t)
	comfy, photoModel := heldComfy(t)
	yaml := clusterYAML(t, paidSlotConfig(upURL)+photoModel+"metering: {unknown_charge: reserved, lease_ttl: 1s}\n"+
		"protection: {ip_rate_limit: 100000/s, login_rate_limit: 1000/m, replicas: 2}\n")
	a, addr := childGateway(t, yaml)
	child := startChild(t, a.Config, addr)
	key, ids := submitFour(t, a, up)
	photo, handle := a.startPhoto(key, comfy)
	b := setup(t, yaml)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	select {
	case got := <-up.arrived:
		if got != "j1" {
			t.Fatalf("after the kill the upstream got %q, want j1", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the jobs of the killed replica were not taken over")
	}
	resp, body := b.do("POST", "/v1/predictions/"+ids[3]+"/cancel", key, "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"canceled"`) {
		t.Fatalf("cancel: %d %s", resp.StatusCode, body)
	}
	up.release <- struct{}{}
	up.release <- struct{}{}
	for _, id := range ids[1:3] {
		waitStatus(t, b, key, id, "succeeded")
	}
	waitStatus(t, b, key, ids[0], "failed")
	b.wantReattached(key, comfy, photo.ID, handle)
	ledger := b.ledgerOf(append(ids, photo.ID)...)
	for i, want := range []string{tollgate.ResultUpstreamError, tollgate.ResultOK, tollgate.ResultOK, tollgate.ResultRejected} {
		got := ledger[ids[i]]
		if got.Outcome != want || (got.Cost == "0.000000") != (i == 0 || i == 3) {
			t.Errorf("ledger record of j%d: %s at %s, want %s", i, got.Outcome, got.Cost, want)
		}
	}
	if got := ledger[photo.ID]; got.Outcome != tollgate.ResultOK {
		t.Errorf("ledger record of the re-attached ComfyUI job: %s at %s, want ok", got.Outcome, got.Cost)
	}
	b.wantSpendIsLedger(key, ledger, append(ids, photo.ID)...)
}

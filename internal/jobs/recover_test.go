package jobs_test

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/comfytest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// TestRestartSettlesJobsEndedUnsettled: a queued job canceled in the
// store while no gateway runs (tollgate jobs cancel), and a submit that
// reserved its job's cost and died before queueing it, leave held usage
// records open; the next start settles each once, at no charge, and the
// reservation of the job still queued stays held until it runs.
func TestRestartSettlesJobsEndedUnsettled(t *testing.T) {
	onEngines(t, testRestartSettlesJobsEndedUnsettled)
}

func testRestartSettlesJobsEndedUnsettled(t *testing.T, engine string) {
	g := newGate()
	e := setupOn(t, engine, models, g)
	running := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "running"})
	<-g.arrived
	canceled := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "canceled"})
	queued := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "queued"})
	e.svc.Stop()
	owner := tollgate.Owner{TenantID: "acme", UserID: "usr_alice"}
	if j, err := e.jobs.Cancel(t.Context(), owner, canceled.ID, e.clock.Now()); err != nil || j.Status != tollgate.JobCanceled {
		t.Fatalf("cancel in the store: %v, %v", j, err)
	}
	lost, err := e.meter.Admit(t.Context(), &tollgate.Call{RequestID: "lostsubmit", Start: e.clock.Now().Add(-time.Minute),
		Principal: users["alice"], Route: "demo/echo", Model: "demo/echo", Held: true})
	if err != nil || lost == nil {
		t.Fatalf("admit: %v", err)
	}
	for _, id := range []string{canceled.ID, queued.ID, "lostsubmit"} {
		if r, err := e.ledger.Record(t.Context(), id); err != nil || r.Settled {
			t.Fatalf("record of %s before the start: %+v, %v; want open", id, r, err)
		}
	}

	e.startAgain(t)
	for _, id := range []string{canceled.ID, "lostsubmit"} {
		if r, err := e.ledger.Record(t.Context(), id); err != nil || !r.Settled || r.Cost != 0 || r.Outcome != tollgate.ResultRejected {
			t.Errorf("record of %s after the start: %+v, %v; want settled, rejected, at no cost", id, r, err)
		}
	}
	if r, err := e.ledger.Record(t.Context(), queued.ID); err != nil || r.Settled || r.Reserved == 0 {
		t.Errorf("record of the queued job: %+v, %v; want open with its reservation", r, err)
	}
	if tag := <-g.arrived; tag != "queued" {
		t.Fatalf("the upstream got %q, want the queued job", tag)
	}
	g.release <- struct{}{}
	if _, p := e.streamUntilDone(t, "alice", queued); p.Status != "succeeded" {
		t.Fatalf("the queued job ended %s", p.Status)
	}
	if r := e.record(t, queued.ID); !r.Settled || r.Outcome != tollgate.ResultOK || r.Cost == 0 {
		t.Errorf("the queued job's record %+v, want settled ok", r)
	}
	if r, _ := e.ledger.Record(t.Context(), running.ID); !r.Settled || r.Outcome != tollgate.ResultUpstreamError {
		t.Errorf("the job running at the stop: %+v, want settled as failed", r)
	}
}

// TestComfyUIJobOutlivesARestart: a clean restart of the gateway leaves a
// running ComfyUI prompt running; the restarted gateway re-attaches the
// job by its prompt id, and it succeeds with its output, charged once for
// ComfyUI's own run time.
func TestComfyUIJobOutlivesARestart(t *testing.T) { onEngines(t, testComfyUIJobOutlivesARestart) }

func testComfyUIJobOutlivesARestart(t *testing.T, engine string) {
	e, s := setupComfyOn(t, engine, comfytest.Options{Hold: true})
	other := postDirect(t, s, "someone") // ComfyUI is busy: the job's prompt waits in its queue
	if err := s.WaitHeld(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	p := e.create(t, "alice", "photo/ddcolor", map[string]any{"image": pngURI(t, 32, 32)})
	// Progress of the job's prompt: its runner stored the prompt id (before
	// it watched) and follows it.
	waitProgress(t, p, func() { s.Release(other) })
	prompt := s.Order()[1]
	e.restart(t)
	if j, err := e.jobs.JobByID(t.Context(), p.ID); err != nil || j.Status != tollgate.JobProcessing {
		t.Fatalf("after the restart the job is %v, %v; want still processing", j, err)
	}
	s.Release(prompt)
	ex, err := s.WaitDone(t.Context(), prompt)
	if err != nil || ex.Status != "success" {
		t.Fatalf("the prompt ended %+v, %v; want success, not interrupted", ex, err)
	}
	if _, done := e.streamUntilDone(t, "alice", p); done.Status != "succeeded" || done.Output == nil {
		t.Fatalf("the re-attached job ended %s with output %v", done.Status, done.Output)
	}
	if n := len(s.Executions()); n != 2 {
		t.Errorf("ComfyUI ran %d prompts, want the other one and the job's once", n)
	}
	want := ex.End.Sub(ex.Start).Milliseconds()
	if r := e.record(t, p.ID); !r.Settled || r.Units.GPUMillis != want || r.Cost != tollgate.Money(10_000+want) {
		t.Errorf("ledger record %+v, want settled once for ComfyUI's %d ms", r, want)
	}
}

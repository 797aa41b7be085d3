package comfytest_test

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/comfytest"
)

// TestFIFO checks that prompts run one at a time in queue order, a
// "front" prompt first, and that the log records each run.
func TestFIFO(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{Hold: true})
	ctx := ctxT(t)
	p1 := submit(t, s, "a", ddcolor("old.png", "p1", 512))
	if err := s.WaitHeld(ctx, p1); err != nil {
		t.Fatal(err)
	}
	p2 := submit(t, s, "b", ddcolor("old.png", "p2", 544))
	p3 := submit(t, s, "c", ddcolor("old.png", "p3", 576))
	code, out := postJSON(t, s.URL+"/prompt", map[string]any{"prompt": ddcolor("old.png", "p4", 608), "client_id": "d", "front": true})
	p4, _ := out["prompt_id"].(string)
	if code != 200 || out["number"].(float64) >= 0 {
		t.Fatalf("front prompt: %d %v, want a negative number", code, out)
	}
	var q map[string][][]any
	getJSON(t, s.URL+"/queue", &q)
	running, pending := q["queue_running"], q["queue_pending"]
	var pendingIDs []string
	for _, item := range pending {
		pendingIDs = append(pendingIDs, item[1].(string))
	}
	slices.Sort(pendingIDs)
	wantPending := []string{p2, p3, p4}
	slices.Sort(wantPending)
	if len(running) != 1 || running[0][1] != p1 || len(running[0]) != 5 || !slices.Equal(pendingIDs, wantPending) {
		t.Fatalf("queue running %v, pending %v; want [%s] and %v", running, pendingIDs, p1, wantPending)
	}
	for _, id := range []string{p1, p4, p2, p3} {
		if err := s.WaitHeld(ctx, id); err != nil {
			t.Fatalf("%s never ran: %v (order %v)", id, err, s.Order())
		}
		s.Release(id)
		if _, err := s.WaitDone(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := s.Order(), []string{p1, p4, p2, p3}; !slices.Equal(got, want) {
		t.Errorf("execution order %v, want %v", got, want)
	}
	log := s.Executions()
	for i := 1; i < len(log); i++ {
		if log[i].Start.Before(log[i-1].End) || log[i].Status != "success" {
			t.Errorf("run %d %+v overlaps run %d %+v", i, log[i], i-1, log[i-1])
		}
	}
}

// TestInterrupt checks /interrupt by prompt_id (only the running one)
// and globally.
func TestInterrupt(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{Hold: true})
	ctx := ctxT(t)
	c := dial(t, s, "/ws?clientId=a")
	c.Next()
	p1 := submit(t, s, "a", ddcolor("old.png", "p1", 512))
	p2 := submit(t, s, "a", ddcolor("old.png", "p2", 544))
	if err := s.WaitHeld(ctx, p1); err != nil {
		t.Fatal(err)
	}
	postJSON(t, s.URL+"/interrupt", map[string]any{"prompt_id": p2}) // pending: no effect
	s.Release(p1)
	if e, err := s.WaitDone(ctx, p1); err != nil || e.Status != "success" {
		t.Fatalf("p1 %+v %v, want success despite an interrupt aimed at p2", e, err)
	}
	if err := s.WaitHeld(ctx, p2); err != nil {
		t.Fatal(err)
	}
	postJSON(t, s.URL+"/interrupt", map[string]any{"prompt_id": p2})
	if e, err := s.WaitDone(ctx, p2); err != nil || e.Status != "interrupted" {
		t.Fatalf("p2 %+v %v, want interrupted", e, err)
	}
	frames := c.Until(promptDone(p2))
	var interrupted map[string]any
	for _, f := range frames {
		if f.Type == "execution_interrupted" {
			interrupted = f.Data
		}
	}
	if interrupted["prompt_id"] != p2 || interrupted["node_id"] != "2" || interrupted["node_type"] != "DDColor_Colorize" {
		t.Errorf("execution_interrupted %v", interrupted)
	}
	var h map[string]map[string]any
	getJSON(t, s.URL+"/history/"+p2, &h)
	if st := h[p2]["status"].(map[string]any); st["status_str"] != "error" || st["completed"] != false {
		t.Errorf("history status %v", st)
	}
	// A global interrupt while nothing runs is lost, as the real flag is
	// reset when the next prompt starts.
	if resp, err := http.Post(s.URL+"/interrupt", "", nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /interrupt without body: %v", err)
	}
	p3 := submit(t, s, "a", ddcolor("old.png", "p3", 576))
	s.Release(p3)
	if e, err := s.WaitDone(ctx, p3); err != nil || e.Status != "success" {
		t.Errorf("p3 %+v %v, want success", e, err)
	}
}

// TestFail checks a node failure: execution_error, the history, the job.
func TestFail(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{Hold: true})
	ctx := ctxT(t)
	c := dial(t, s, "/ws?clientId=a")
	c.Next()
	id := submit(t, s, "a", ddcolor("old.png", "f", 512))
	if err := s.WaitHeld(ctx, id); err != nil {
		t.Fatal(err)
	}
	s.Fail(id, "CUDA out of memory")
	var failure map[string]any
	for _, f := range c.Until(promptDone(id)) {
		if f.Type == "execution_error" {
			failure = f.Data
		}
	}
	if failure["exception_message"] != "CUDA out of memory" || failure["node_id"] != "2" {
		t.Errorf("execution_error %v", failure)
	}
	var job map[string]any
	if code := getJSON(t, s.URL+"/api/jobs/"+id, &job); code != 200 || job["status"] != "failed" || job["execution_error"] == nil {
		t.Errorf("job %d %v, want failed with its error", code, job)
	}
	var jobs struct {
		Jobs       []map[string]any
		Pagination map[string]any
	}
	getJSON(t, s.URL+"/api/jobs?status=completed", &jobs)
	if len(jobs.Jobs) != 0 || jobs.Pagination["total"] != 0.0 {
		t.Errorf("completed jobs %v", jobs)
	}
}

// TestDuration checks that Options.Duration is the prompt's run time.
func TestDuration(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{Duration: func(comfytest.Prompt) time.Duration { return 40 * time.Millisecond }})
	id := submit(t, s, "", ddcolor("old.png", "d", 512))
	e, err := s.WaitDone(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if d := e.End.Sub(e.Start); d < 40*time.Millisecond {
		t.Errorf("ran %v, want at least the 40ms Duration", d)
	}
}

// TestCapacity checks Options.Concurrency (prompts at once) and
// Options.MaxQueue (pending prompts before POST /prompt is refused).
func TestCapacity(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	t.Run("concurrency", func(t *testing.T) {
		s := setup(t, comfytest.Options{Hold: true, Concurrency: 2})
		a := submit(t, s, "", ddcolor("old.png", "a", 512))
		b := submit(t, s, "", ddcolor("old.png", "b", 544))
		for _, id := range []string{a, b} {
			if err := s.WaitHeld(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		s.Release(a)
		s.Release(b)
		if err := s.WaitIdle(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("max queue", func(t *testing.T) {
		s := setup(t, comfytest.Options{Hold: true, MaxQueue: 1})
		a := submit(t, s, "", ddcolor("old.png", "a", 512))
		if err := s.WaitHeld(ctx, a); err != nil {
			t.Fatal(err)
		}
		submit(t, s, "", ddcolor("old.png", "b", 544))
		if code, _ := postJSON(t, s.URL+"/prompt", map[string]any{"prompt": ddcolor("old.png", "c", 576)}); code != http.StatusServiceUnavailable {
			t.Errorf("third prompt: %d, want 503", code)
		}
		if n := len(s.Pending()); n != 1 {
			t.Errorf("%d pending, want 1", n)
		}
	})
}

// TestCache checks that an unchanged prompt is cached: execution_cached
// lists every node and "executed" resends the first run's file.
func TestCache(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{})
	c := dial(t, s, "/ws?clientId=a")
	c.Next()
	first := submit(t, s, "a", ddcolor("old.png", "c", 512))
	c.Until(promptDone(first))
	second := submit(t, s, "a", ddcolor("old.png", "c", 512))
	var cachedNodes []any
	var file any
	for _, f := range c.Until(promptDone(second)) {
		switch f.Type {
		case "execution_cached":
			cachedNodes = f.Data["nodes"].([]any)
		case "executed":
			file = f.Data["output"].(map[string]any)["images"].([]any)[0].(map[string]any)["filename"]
		case "executing", "progress":
			if f.Data["node"] != nil {
				t.Errorf("cached prompt ran node %v", f.Data["node"])
			}
		}
	}
	if len(cachedNodes) != 3 || file != "c_00001_.png" {
		t.Errorf("cached %v, executed file %v", cachedNodes, file)
	}
	entries, _ := os.ReadDir(s.Dir("output"))
	if len(entries) != 1 {
		t.Errorf("%d output files, want 1", len(entries))
	}
}

// TestJobs checks GET /api/jobs and /api/jobs/{id} (comfy_execution/jobs.py):
// statuses, filters, pagination, a finished job's preview and workflow.
func TestJobs(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{Hold: true})
	ctx := ctxT(t)
	code, out := postJSON(t, s.URL+"/prompt", map[string]any{"prompt": ddcolor("old.png", "j1", 512),
		"extra_data": map[string]any{"extra_pnginfo": map[string]any{"workflow": map[string]any{"id": "wf-7"}}}})
	if code != 200 {
		t.Fatalf("POST /prompt: %d %v", code, out)
	}
	done := out["prompt_id"].(string)
	s.Release(done)
	if _, err := s.WaitDone(ctx, done); err != nil {
		t.Fatal(err)
	}
	running := submit(t, s, "", ddcolor("old.png", "j2", 544))
	if err := s.WaitHeld(ctx, running); err != nil {
		t.Fatal(err)
	}
	pending := submit(t, s, "", ddcolor("old.png", "j3", 576))
	type list struct {
		Jobs       []map[string]any
		Pagination map[string]any
	}
	for query, want := range map[string]string{"pending": pending, "in_progress": running, "completed": done, "failed": ""} {
		var l list
		getJSON(t, s.URL+"/api/jobs?status="+query, &l)
		if (want == "" && len(l.Jobs) != 0) || (want != "" && (len(l.Jobs) != 1 || l.Jobs[0]["id"] != want)) {
			t.Errorf("status=%s: %v, want [%s]", query, l.Jobs, want)
		}
	}
	var l list
	getJSON(t, s.URL+"/api/jobs?workflow_id=wf-7", &l)
	if len(l.Jobs) != 1 || l.Jobs[0]["id"] != done || l.Jobs[0]["outputs_count"] != 1.0 {
		t.Fatalf("workflow_id=wf-7: %v", l.Jobs)
	}
	if p := l.Jobs[0]["preview_output"].(map[string]any); p["filename"] != "j1_00001_.png" || p["nodeId"] != "3" || p["mediaType"] != "images" {
		t.Errorf("preview_output %v", p)
	}
	getJSON(t, s.URL+"/api/jobs?limit=1&offset=1", &l)
	if len(l.Jobs) != 1 || l.Pagination["total"] != 3.0 || l.Pagination["has_more"] != true || l.Pagination["limit"] != 1.0 {
		t.Errorf("limit=1&offset=1: %v %v", l.Jobs, l.Pagination)
	}
	for _, q := range []string{"limit=0", "limit=x", "offset=x", "status=lost", "sort_by=name", "sort_order=up"} {
		if code := getJSON(t, s.URL+"/api/jobs?"+q, nil); code != 400 {
			t.Errorf("%s: %d, want 400", q, code)
		}
	}
	var job map[string]any
	getJSON(t, s.URL+"/api/jobs/"+done, &job)
	if wf := job["workflow"].(map[string]any); job["status"] != "completed" || job["outputs"] == nil || wf["prompt"] == nil {
		t.Errorf("job %v", job)
	}
	if code := getJSON(t, s.URL+"/api/jobs/nope", nil); code != 404 {
		t.Errorf("unknown job: %d, want 404", code)
	}
}

// TestNoCache checks Options.NoCache (--cache-none): an unchanged prompt
// runs again and saves a second file.
func TestNoCache(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{NoCache: true})
	ctx := ctxT(t)
	for range 2 {
		if _, err := s.WaitDone(ctx, submit(t, s, "", ddcolor("old.png", "nc", 512))); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"nc_00001_.png", "nc_00002_.png"} {
		if _, err := os.Stat(filepath.Join(s.Dir("output"), name)); err != nil {
			t.Errorf("output %s: %v", name, err)
		}
	}
}

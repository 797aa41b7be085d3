package comfyui_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/internal/comfytest"
	"github.com/tollgate/tollgate/internal/comfyui"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// memResults keeps a job's result files in memory.
type memResults struct {
	mu    sync.Mutex
	files map[string][]byte
}

func (m *memResults) Save(_ context.Context, name, _ string, body []byte) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[name] = body
	return "ref:" + name, nil
}

func newBackend(t *testing.T) *comfyui.Backend {
	t.Helper()
	wf, _ := json.Marshal(comfytest.DDColorPrompt("x.png", "ddcolor", 512))
	path := filepath.Join(t.TempDir(), "wf.json")
	if err := os.WriteFile(path, wf, 0o644); err != nil {
		t.Fatal(err)
	}
	m := &config.JobModel{Name: "photo/ddcolor", Backend: "comfyui", Workflow: path,
		Inputs: map[string]config.JobInput{"image": {Type: "image", Node: "1", Field: "image"}}}
	m.SetDefaults()
	b, err := comfyui.New(m, comfyui.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWatchReattaches shows that a backend that did not submit a prompt
// (as after a gateway restart) follows it by its handle to its end, and
// finds an ended one in the history.
func TestWatchReattaches(t *testing.T) {
	s := comfytest.New(t, comfytest.Options{Hold: true})
	input, _ := json.Marshal(map[string]any{"image": "data:image/png;base64," + base64.StdEncoding.EncodeToString(comfytest.PNG(20, 10))})
	results := &memResults{files: map[string][]byte{}}
	run := &tollgate.JobRun{Job: &tollgate.Job{ID: "job1", Owner: tollgate.Owner{TenantID: "acme", UserID: "alice"}, Input: input},
		Upstream: s.URL, Report: func(tollgate.JobEvent) {}, Results: results}
	handle, err := newBackend(t).Submit(t.Context(), run)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitHeld(t.Context(), handle); err != nil {
		t.Fatal(err)
	}
	restarted := newBackend(t)
	done := make(chan *tollgate.JobResult, 1)
	go func() {
		res, err := restarted.Watch(t.Context(), run, handle)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	s.Release(handle)
	res := <-done
	ex, err := s.WaitDone(t.Context(), handle)
	if err != nil {
		t.Fatal(err)
	}
	if res == nil || res.Status != tollgate.JobSucceeded || res.PredictMillis != ex.End.Sub(ex.Start).Milliseconds() {
		t.Fatalf("re-attached result %+v, want succeeded with ComfyUI's %d ms", res, ex.End.Sub(ex.Start).Milliseconds())
	}
	var out string
	if err := json.Unmarshal(res.Output, &out); err != nil || results.files[out[len("ref:"):]] == nil {
		t.Fatalf("output %s, want a saved file of %v", res.Output, results.files)
	}
	t.Run("an ended prompt is read from the history", func(t *testing.T) {
		again, err := newBackend(t).Watch(t.Context(), run, handle)
		if err != nil || again.Status != tollgate.JobSucceeded || again.PredictMillis != res.PredictMillis {
			t.Errorf("watch after the end: %+v %v", again, err)
		}
	})
}

// TestReattachToAPromptComfyUILost: a prompt ComfyUI no longer has (it
// restarted while the gateway was down) fails at once, charged nothing.
func TestReattachToAPromptComfyUILost(t *testing.T) {
	s := comfytest.New(t, comfytest.Options{})
	run := &tollgate.JobRun{Job: &tollgate.Job{ID: "job1", Owner: tollgate.Owner{TenantID: "acme", UserID: "alice"}},
		Upstream: s.URL, Report: func(tollgate.JobEvent) {}, Results: &memResults{files: map[string][]byte{}}}
	res, err := newBackend(t).Reattach(t.Context(), run, "0b8e8f6e-5a3c-4c8e-9d2e-3f6f2f8a7c11")
	if err != nil || res == nil || res.Status != tollgate.JobFailed || res.PredictMillis != 0 || !strings.Contains(res.Error, "no longer has") {
		t.Fatalf("Reattach to a lost prompt = %+v, %v; want failed at once with no GPU time", res, err)
	}
}

package jobs_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/comfytest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

const comfyModels = `
plans:
  free: {}
  pro: {priority: 10}
jobs:
  - name: photo/ddcolor
    backend: comfyui
    upstreams: [COMFY]
    workflow: WORKFLOW
    timeout: 1m
    inputs:
      image: {type: image, node: "1", field: image, required: true}
      size: {type: integer, node: "2", field: model_input_size, default: 512}
    price: {per_request: "0.01", per_gpu_second: "0.001"}
  - name: photo/broken
    backend: comfyui
    upstreams: [COMFY]
    workflow: BROKEN
    inputs:
      image: {type: image, node: "1", field: image, required: true}
`

// setupComfy runs the jobs service in front of a ComfyUI emulator, with
// the DDColor workflow as the model photo/ddcolor.
func setupComfy(t *testing.T, opts comfytest.Options) (*env, *comfytest.Server) {
	t.Helper()
	return setupComfyOn(t, "sqlite", opts)
}

// setupComfyOn is setupComfy on the named engine.
func setupComfyOn(t *testing.T, engine string, opts comfytest.Options) (*env, *comfytest.Server) {
	t.Helper()
	s := comfytest.New(t, opts)
	wf, _ := json.Marshal(comfytest.DDColorPrompt("example.png", "ddcolor", 512))
	path := filepath.Join(t.TempDir(), "ddcolor.json")
	if err := os.WriteFile(path, wf, 0o644); err != nil {
		t.Fatal(err)
	}
	broken := comfytest.DDColorPrompt("example.png", "ddcolor", 512)
	broken["2"].(map[string]any)["inputs"].(map[string]any)["checkpoint"] = "missing.pth"
	wf, _ = json.Marshal(broken)
	brokenPath := filepath.Join(t.TempDir(), "broken.json")
	if err := os.WriteFile(brokenPath, wf, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer("COMFY", s.URL, "WORKFLOW", path, "BROKEN", brokenPath).Replace(comfyModels)
	return setupOn(t, engine, cfg, http.NotFoundHandler()), s
}

// waitProgress opens a prediction's event stream, calls opened, and
// reads until the first progress event above 0; it returns the values
// seen.
func waitProgress(t *testing.T, p pred, opened func()) []float64 {
	t.Helper()
	resp, err := http.Get(p.URLs["stream"])
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	defer resp.Body.Close()
	opened()
	var seen []float64
	sc := bufio.NewScanner(resp.Body)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "event: "); ok {
			event = name
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok && event == "progress" {
			var v struct{ Progress float64 }
			_ = json.Unmarshal([]byte(data), &v)
			seen = append(seen, v.Progress)
			if v.Progress > 0 {
				return seen
			}
		}
		if event == "done" {
			t.Fatalf("the prediction ended before any progress; saw %v", seen)
		}
	}
	t.Fatalf("the stream ended before any progress")
	return nil
}

// nthStarted waits on the emulator's status broadcasts until n prompts
// have started and returns the n-th one's id.
func nthStarted(s *comfytest.Server, obs *comfytest.WSClient, n int) string {
	for len(s.Order()) < n {
		obs.Next()
	}
	return s.Order()[n-1]
}

func TestComfyUIDDColor(t *testing.T) { onEngines(t, testComfyUIDDColor) }

func testComfyUIDDColor(t *testing.T, engine string) {
	// 250 ms of emulated GPU work, measured by ComfyUI's timestamps only
	// (the gateway's clock stands still in these tests).
	e, s := setupComfyOn(t, engine, comfytest.Options{Duration: func(comfytest.Prompt) time.Duration { return 250 * time.Millisecond }})
	p := e.create(t, "alice", "photo/ddcolor", map[string]any{"image": pngURI(t, 64, 48)}, "Prefer", "wait=30")
	if p.Status != "succeeded" {
		t.Fatalf("prediction %+v, want succeeded", p)
	}
	link, _ := p.Output.(string)
	if !strings.HasPrefix(link, e.URL+"/v1/results/"+p.ID+"/") {
		t.Fatalf("output %v, want one signed result link", p.Output)
	}
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("download without credentials: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	img, err := png.Decode(bytes.NewReader(body))
	if err != nil || img.Bounds().Dx() != 64 || img.Bounds().Dy() != 48 {
		t.Fatalf("the output is not the colorized 64×48 PNG: %v", err)
	}
	execs := s.Executions()
	if len(execs) != 1 || execs[0].Status != "success" {
		t.Fatalf("emulator executions %+v, want one success", execs)
	}
	t.Run("the upload and the output are in the user's own subfolder", func(t *testing.T) {
		var upload *comfytest.Request
		for _, r := range s.Requests() {
			if r.Path == "/upload/image" {
				upload = &r
			}
		}
		if upload == nil || upload.ComfyUser == "" {
			t.Fatalf("no upload with a Comfy-User in %v", s.Requests())
		}
		for _, kind := range []string{"input", "output"} {
			files, _ := filepath.Glob(filepath.Join(s.Dir(kind), "tollgate", "u*", "*.png"))
			if len(files) != 1 {
				t.Errorf("%s files in tollgate/<user>/: %v, want one", kind, files)
			}
		}
	})
	t.Run("the ledger's GPU time is ComfyUI's execution time", func(t *testing.T) {
		want := execs[0].End.Sub(execs[0].Start).Milliseconds()
		if want < 250 {
			t.Fatalf("the emulator ran %d ms, want at least its 250", want)
		}
		rec := e.record(t, p.ID)
		if rec.Units.GPUMillis != want {
			t.Errorf("ledger GPU ms %d, want %d (execution_start to execution_success)", rec.Units.GPUMillis, want)
		}
		if wantCost := tollgate.Money(10_000 + want); rec.Cost != wantCost {
			t.Errorf("cost %s, want %s (0.01 + %d ms × 0.001/s)", rec.Cost, wantCost, want)
		}
	})
}

func TestComfyUIProgress(t *testing.T) {
	e, s := setupComfy(t, comfytest.Options{Hold: true})
	other := postDirect(t, s, "someone") // keeps the job waiting in ComfyUI's queue until the stream is open
	if err := s.WaitHeld(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	p := e.create(t, "alice", "photo/ddcolor", map[string]any{"image": pngURI(t, 32, 32)})
	seen := waitProgress(t, p, func() { s.Release(other) })
	if last := seen[len(seen)-1]; last <= 0 || last >= 1 {
		t.Errorf("progress %v while ComfyUI holds the prompt, want a share between 0 and 1", seen)
	}
	s.Release(s.Order()[1])
	if _, done := e.streamUntilDone(t, "alice", p); done.Status != "succeeded" {
		t.Errorf("after release: %s", done.Status)
	}
}

func TestComfyUINodeErrors(t *testing.T) {
	e, s := setupComfy(t, comfytest.Options{})
	t.Run("a value the node refuses is a 422 naming the input", func(t *testing.T) {
		status, _, body := e.call(t, "alice", "POST", "/v1/models/photo/ddcolor/predictions",
			map[string]any{"input": map[string]any{"image": pngURI(t, 32, 32), "size": 5000}})
		if status != http.StatusUnprocessableEntity || !strings.Contains(string(body), "input.size") || !strings.Contains(string(body), "at most 4096") {
			t.Fatalf("create: %d %s, want 422 naming input.size and ComfyUI's bound", status, body)
		}
		for _, r := range s.Requests() {
			if r.Path == "/prompt" || r.Path == "/upload/image" {
				t.Errorf("ComfyUI got %s %s for a refused input", r.Method, r.Path)
			}
		}
	})
	t.Run("node_errors of the workflow itself name the node", func(t *testing.T) {
		p := e.create(t, "alice", "photo/broken", map[string]any{"image": pngURI(t, 32, 32)}, "Prefer", "wait=30")
		if p.Status != "failed" || p.Error == nil || !strings.Contains(*p.Error, "node 2 (DDColor_Colorize)") || !strings.Contains(*p.Error, "missing.pth") {
			t.Fatalf("prediction %s %v, want failed naming node 2 and ComfyUI's reason", p.Status, p.Error)
		}
	})
	if len(s.Executions()) != 0 {
		t.Errorf("ComfyUI executed %v", s.Order())
	}
}

func TestComfyUICancel(t *testing.T) {
	t.Run("queued in ComfyUI: deleted from its queue, the running prompt untouched", func(t *testing.T) {
		e, s := setupComfy(t, comfytest.Options{Hold: true})
		other := postDirect(t, s, "someone")
		if err := s.WaitHeld(t.Context(), other); err != nil {
			t.Fatal(err)
		}
		obs := comfytest.Dial(t, s.URL+"/ws?clientId=observer", nil)
		p := e.create(t, "alice", "photo/ddcolor", map[string]any{"image": pngURI(t, 32, 32)})
		for len(s.Pending()) == 0 {
			obs.Next()
		}
		mine := s.Pending()[0].ID
		if status, _, b := e.call(t, "alice", "POST", "/v1/predictions/"+p.ID+"/cancel", nil); status != 200 {
			t.Fatalf("cancel: %d %s", status, b)
		}
		if _, done := e.streamUntilDone(t, "alice", p); done.Status != "canceled" {
			t.Fatalf("status %s, want canceled", done.Status)
		}
		if len(s.Pending()) != 0 {
			t.Errorf("ComfyUI still has %v pending", s.Pending())
		}
		s.Release(other)
		if ex, err := s.WaitDone(t.Context(), other); err != nil || ex.Status != "success" {
			t.Errorf("the other prompt ended %+v %v, want success", ex, err)
		}
		if slices.Contains(s.Order(), mine) {
			t.Errorf("the canceled prompt ran")
		}
	})
	t.Run("running: interrupted by its prompt_id only", func(t *testing.T) {
		e, s := setupComfy(t, comfytest.Options{Hold: true})
		obs := comfytest.Dial(t, s.URL+"/ws?clientId=observer", nil)
		p := e.create(t, "alice", "photo/ddcolor", map[string]any{"image": pngURI(t, 32, 32)})
		mine := nthStarted(s, obs, 1)
		if err := s.WaitHeld(t.Context(), mine); err != nil {
			t.Fatal(err)
		}
		other := postDirect(t, s, "someone") // waits behind it
		if status, _, b := e.call(t, "alice", "POST", "/v1/predictions/"+p.ID+"/cancel", nil); status != 200 {
			t.Fatalf("cancel: %d %s", status, b)
		}
		if _, done := e.streamUntilDone(t, "alice", p); done.Status != "canceled" {
			t.Fatalf("status %s, want canceled", done.Status)
		}
		if ex, err := s.WaitDone(t.Context(), mine); err != nil || ex.Status != "interrupted" {
			t.Fatalf("the job's prompt ended %+v %v, want interrupted", ex, err)
		}
		if err := s.WaitHeld(t.Context(), other); err != nil {
			t.Fatal(err)
		}
		s.Release(other)
		if ex, err := s.WaitDone(t.Context(), other); err != nil || ex.Status != "success" {
			t.Errorf("the other prompt ended %+v %v, want success (not interrupted)", ex, err)
		}
	})
}

// postDirect queues a DDColor prompt on the emulator itself, as another
// ComfyUI client would, and returns its id.
func postDirect(t *testing.T, s *comfytest.Server, client string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.Dir("input"), "direct.png"), comfytest.PNG(16, 16), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"prompt": comfytest.DDColorPrompt("direct.png", "direct", 512), "client_id": client})
	resp, err := http.Post(s.URL+"/prompt", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		PromptID string `json:"prompt_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || got.PromptID == "" {
		t.Fatalf("direct prompt: %d %v", resp.StatusCode, err)
	}
	return got.PromptID
}

func TestComfyUIFairness(t *testing.T) {
	e, s := setupComfy(t, comfytest.Options{Hold: true})
	obs := comfytest.Dial(t, s.URL+"/ws?clientId=observer", nil)
	user := map[string]string{} // prediction id → user
	var preds []pred
	submit := func(who string) {
		p := e.create(t, who, "photo/ddcolor", map[string]any{"image": pngURI(t, 16, 16)})
		user[p.ID] = who
		preds = append(preds, p)
	}
	for range 5 {
		submit("alice")
	}
	nthStarted(s, obs, 1) // A's first runs at once
	submit("bob")
	submit("pro")
	var order []string
	for n := 1; n <= 7; n++ {
		id := nthStarted(s, obs, n)
		order = append(order, id)
		s.Release(id)
	}
	for _, p := range preds {
		if _, done := e.streamUntilDone(t, user[p.ID], p); done.Status != "succeeded" {
			t.Errorf("%s's prediction %s", user[p.ID], done.Status)
		}
	}
	var who []string
	for _, id := range order {
		who = append(who, user[promptJob(t, s, id)])
	}
	want := []string{"alice", "pro", "bob", "alice", "alice", "alice", "alice"}
	if !slices.Equal(who, want) {
		t.Errorf("ComfyUI ran the prompts of %v, want %v (pro first, then bob before alice's third)", who, want)
	}
}

// promptJob returns the prediction id a prompt ran for, from the name of
// the image it loaded (uploaded as <prediction>-image.png).
func promptJob(t *testing.T, s *comfytest.Server, promptID string) string {
	t.Helper()
	resp, err := http.Get(s.URL + "/history/" + promptID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h map[string]struct{ Prompt []any }
	_ = json.NewDecoder(resp.Body).Decode(&h)
	entry, ok := h[promptID]
	if !ok || len(entry.Prompt) < 3 {
		t.Fatalf("no history of %s", promptID)
	}
	graph, _ := entry.Prompt[2].(map[string]any)
	node, _ := graph["1"].(map[string]any)
	inputs, _ := node["inputs"].(map[string]any)
	name, _ := inputs["image"].(string)
	job, _, _ := strings.Cut(filepath.Base(name), "-image")
	return job
}

func TestComfyUIUpstreamsShareTheQueue(t *testing.T) {
	e, first := setupComfy(t, comfytest.Options{Hold: true})
	second := comfytest.New(t, comfytest.Options{Hold: true})
	e.svc.Stop() // the config changes while no service reads it
	m := e.cfg.JobModel("photo/ddcolor")
	m.Upstreams = append(m.Upstreams, second.URL)
	e.startAgain(t)
	obs1 := comfytest.Dial(t, first.URL+"/ws?clientId=observer", nil)
	obs2 := comfytest.Dial(t, second.URL+"/ws?clientId=observer", nil)
	var preds []pred
	for range 3 {
		preds = append(preds, e.create(t, "alice", "photo/ddcolor", map[string]any{"image": pngURI(t, 16, 16)}))
	}
	a, b := nthStarted(first, obs1, 1), nthStarted(second, obs2, 1)
	if len(first.Pending())+len(second.Pending()) != 0 {
		t.Errorf("a ComfyUI got a second prompt while it ran one (capacity 1)")
	}
	first.Release(a)
	second.Release(b)
	if _, err := first.WaitDone(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	select { // the third runs on whichever freed first
	case <-waitStarted(first, obs1, 2):
		first.Release(first.Order()[1])
	case <-waitStarted(second, obs2, 2):
		second.Release(second.Order()[1])
	}
	for _, p := range preds {
		if _, done := e.streamUntilDone(t, "alice", p); done.Status != "succeeded" {
			t.Errorf("prediction %s", done.Status)
		}
	}
}

// waitStarted closes its channel once n prompts started on s.
func waitStarted(s *comfytest.Server, obs *comfytest.WSClient, n int) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		for len(s.Order()) < n {
			if _, ok := <-obs.Frames(); !ok {
				return
			}
		}
		close(ch)
	}()
	return ch
}

func TestComfyUIFailures(t *testing.T) {
	t.Run("a node's error fails the prediction naming the node, charged its GPU time", func(t *testing.T) {
		e, s := setupComfy(t, comfytest.Options{Hold: true})
		obs := comfytest.Dial(t, s.URL+"/ws?clientId=observer", nil)
		p := e.create(t, "alice", "photo/ddcolor", map[string]any{"image": pngURI(t, 16, 16)})
		id := nthStarted(s, obs, 1)
		if err := s.WaitHeld(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		s.Fail(id, "CUDA out of memory")
		_, done := e.streamUntilDone(t, "alice", p)
		if done.Status != "failed" || done.Error == nil || *done.Error != "node 2 (DDColor_Colorize): CUDA out of memory" {
			t.Fatalf("prediction %s %v, want failed naming node 2 and ComfyUI's message", done.Status, done.Error)
		}
		ex, _ := s.WaitDone(t.Context(), id)
		if rec := e.record(t, p.ID); rec.Units.GPUMillis != ex.End.Sub(ex.Start).Milliseconds() {
			t.Errorf("GPU ms %d, want ComfyUI's %d", rec.Units.GPUMillis, ex.End.Sub(ex.Start).Milliseconds())
		}
	})
	t.Run("a prompt past the model's timeout is interrupted on ComfyUI", func(t *testing.T) {
		e, s := setupComfy(t, comfytest.Options{Hold: true})
		e.svc.Stop() // the config changes while no service reads it
		e.cfg.JobModel("photo/ddcolor").Timeout = time.Second
		e.startAgain(t)
		obs := comfytest.Dial(t, s.URL+"/ws?clientId=observer", nil)
		p := e.create(t, "alice", "photo/ddcolor", map[string]any{"image": pngURI(t, 16, 16)})
		id := nthStarted(s, obs, 1)
		_, done := e.streamUntilDone(t, "alice", p)
		if done.Status != "failed" || done.Error == nil || !strings.Contains(*done.Error, "timeout") {
			t.Fatalf("prediction %s %v, want failed past its timeout", done.Status, done.Error)
		}
		if ex, err := s.WaitDone(t.Context(), id); err != nil || ex.Status != "interrupted" {
			t.Errorf("ComfyUI's prompt ended %+v %v, want interrupted", ex, err)
		}
	})
}

func TestComfyUIWithoutWebsocket(t *testing.T) {
	e, s := setupComfy(t, comfytest.Options{})
	target, _ := url.Parse(s.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/ws") {
			http.NotFound(w, r) // a proxy that does not pass websockets
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	e.svc.Stop() // the config changes while no service reads it
	e.cfg.JobModel("photo/ddcolor").Upstreams = []string{front.URL}
	e.startAgain(t)
	p := e.create(t, "alice", "photo/ddcolor", map[string]any{"image": pngURI(t, 16, 16)}, "Prefer", "wait=30")
	if link, _ := p.Output.(string); p.Status != "succeeded" || !strings.HasPrefix(link, e.URL+"/v1/results/") {
		t.Fatalf("prediction %s %v %v, want succeeded from /history alone", p.Status, p.Output, p.Error)
	}
	ex := s.Executions()
	if rec := e.record(t, p.ID); len(ex) != 1 || rec.Units.GPUMillis != ex[0].End.Sub(ex[0].Start).Milliseconds() {
		t.Errorf("GPU ms %d, want ComfyUI's execution time", rec.Units.GPUMillis)
	}
}

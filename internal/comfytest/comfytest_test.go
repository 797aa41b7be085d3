package comfytest_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/comfytest"
)

// setup starts a held emulator with an uploaded image, "old.png".
func setup(t *testing.T, opts comfytest.Options) *comfytest.Server {
	t.Helper()
	s := comfytest.New(t, opts)
	upload(t, s, "old.png", "", comfytest.PNG(40, 24))
	return s
}

// kinds names the frames: text types, "preview" for binary frames,
// without progress_state.
func kinds(frames []frame) []string {
	var out []string
	for _, f := range frames {
		switch {
		case f.Binary != nil:
			out = append(out, "preview")
		case f.Type != "progress_state":
			out = append(out, f.Type)
		}
	}
	return out
}

// TestMessageSequence checks the websocket messages of one prompt, in
// order, as server.py and execution.py send them, and that another
// client receives only the status broadcasts.
func TestMessageSequence(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{Hold: true})
	alice := dial(t, s, "/ws?clientId=alice")
	bob := dial(t, s, "/api/ws?clientId=bob")
	for _, c := range []*wsClient{alice, bob} {
		f := c.next()
		if f.Type != "status" || f.Data["sid"] == nil {
			t.Fatalf("first frame %+v, want status with sid", f)
		}
	}
	id := submit(t, s, "alice", ddcolor("old.png", "alice/out", 512))
	if err := s.WaitHeld(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	s.Release(id)
	got := alice.until(promptDone(id))
	want := []string{"status", "status", "execution_start", "execution_cached", "executing", "executing",
		"progress", "preview", "progress", "preview", "progress", "preview", "progress", "preview",
		"executing", "executed", "execution_success", "status", "executing"}
	if !slices.Equal(kinds(got), want) {
		t.Fatalf("alice got %v\nwant %v", kinds(got), want)
	}
	for _, f := range got {
		switch {
		case f.Binary != nil:
			if binary.BigEndian.Uint32(f.Binary[0:4]) != comfytest.PreviewImage || binary.BigEndian.Uint32(f.Binary[4:8]) != 1 || !bytes.HasPrefix(f.Binary[8:], []byte{0xff, 0xd8}) {
				t.Errorf("preview header % x, want type 1, JPEG", f.Binary[:10])
			}
		case f.Type == "status":
		case f.Type == "executing" && f.Data["node"] == nil:
		default:
			if f.Data["prompt_id"] != id {
				t.Errorf("%s carries prompt_id %v, want %s", f.Type, f.Data["prompt_id"], id)
			}
		}
		if f.Type == "progress" && (f.Data["node"] != "2" || f.Data["max"] != 4.0) {
			t.Errorf("progress %v, want node 2 of max 4", f.Data)
		}
	}
	executed := got[len(got)-4].Data
	images := executed["output"].(map[string]any)["images"].([]any)
	if img := images[0].(map[string]any); executed["node"] != "3" || img["filename"] != "out_00001_.png" || img["subfolder"] != "alice" || img["type"] != "output" {
		t.Errorf("executed %v", executed)
	}
	if q := got[len(got)-2].Data["status"].(map[string]any)["exec_info"].(map[string]any)["queue_remaining"]; q != 0.0 {
		t.Errorf("final status queue_remaining %v, want 0", q)
	}
	var start, end any
	for _, f := range got {
		switch f.Type {
		case "execution_start":
			start = f.Data["timestamp"]
		case "execution_success":
			end = f.Data["timestamp"]
		}
	}
	if log := s.Executions(); len(log) != 1 || float64(log[0].Start.UnixMilli()) != start || float64(log[0].End.UnixMilli()) != end {
		t.Errorf("execution log %+v, want the messages' times %v and %v", log, start, end)
	}
	// A broadcast after the prompt: bob must have had only statuses.
	postJSON(t, s.URL+"/queue", map[string]any{"clear": true})
	for i, f := range bob.until(func() func(frame) bool {
		n := 0
		return func(f frame) bool { n++; return n == 4 }
	}()) {
		if f.Type != "status" {
			t.Errorf("bob's frame %d is %s %v: another client's message", i, f.Type, f.Data)
		}
	}
}

// TestPreviewMetadata checks the feature_flags exchange and the type 4
// previews a client gets once it announced supports_preview_metadata.
func TestPreviewMetadata(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{})
	c := dial(t, s, "/ws?clientId=ui")
	c.next()
	if err := c.c.Write(ctxT(t), 1, []byte(`{"type":"feature_flags","data":{"supports_preview_metadata":true}}`)); err != nil {
		t.Fatal(err)
	}
	if f := c.next(); f.Type != "feature_flags" || f.Data["supports_preview_metadata"] != true {
		t.Fatalf("reply %+v, want the server's feature_flags", f)
	}
	id := submit(t, s, "ui", ddcolor("old.png", "ui", 512))
	var previews int
	for _, f := range c.until(promptDone(id)) {
		if f.Binary == nil {
			continue
		}
		previews++
		n := binary.BigEndian.Uint32(f.Binary[4:8])
		var meta map[string]any
		if binary.BigEndian.Uint32(f.Binary[0:4]) != comfytest.PreviewImageWithMetadata || json.Unmarshal(f.Binary[8:8+n], &meta) != nil {
			t.Fatalf("preview % x, want type 4 with metadata", f.Binary[:12])
		}
		if meta["prompt_id"] != id || meta["node_id"] != "2" || meta["image_type"] != "image/jpeg" || !bytes.HasPrefix(f.Binary[8+n:], []byte{0xff, 0xd8}) {
			t.Errorf("preview metadata %v", meta)
		}
	}
	if previews != 4 {
		t.Errorf("%d previews, want 4", previews)
	}
}

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

// TestNodeErrors checks validate_prompt's answers: the error and
// node_errors shapes, and that a refused prompt is not queued.
func TestNodeErrors(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{Hold: true})
	with := func(node, input string, v any) map[string]any {
		g := ddcolor("old.png", "x", 512)
		g[node].(map[string]any)["inputs"].(map[string]any)[input] = v
		return g
	}
	audio := ddcolor("old.png", "x", 512)
	audio["4"] = map[string]any{"class_type": "LoadAudio", "inputs": map[string]any{"audio": "none.wav"}}
	audio["3"].(map[string]any)["inputs"].(map[string]any)["images"] = []any{"4", 0}
	tests := []struct {
		name      string
		graph     any
		errType   string
		node      string
		nodeError string
	}{
		{"no prompt", nil, "no_prompt", "", ""},
		{"unknown class", map[string]any{"1": map[string]any{"class_type": "Nope", "inputs": map[string]any{}}}, "invalid_prompt", "", ""},
		{"no outputs", map[string]any{"1": map[string]any{"class_type": "LoadImage", "inputs": map[string]any{"image": "old.png"}}}, "prompt_no_outputs", "", ""},
		{"size below min", with("2", "model_input_size", 16), "prompt_outputs_failed_validation", "2", "value_smaller_than_min"},
		{"size above max", with("2", "model_input_size", 8192), "prompt_outputs_failed_validation", "2", "value_bigger_than_max"},
		{"size not a number", with("2", "model_input_size", "big"), "prompt_outputs_failed_validation", "2", "invalid_input_type"},
		{"unknown checkpoint", with("2", "checkpoint", "x.pth"), "prompt_outputs_failed_validation", "2", "value_not_in_list"},
		{"missing image file", with("1", "image", "gone.png"), "prompt_outputs_failed_validation", "1", "custom_validation_failed"},
		{"missing input", with("3", "images", nil), "prompt_outputs_failed_validation", "3", "bad_linked_input"},
		{"wrong link type", audio, "prompt_outputs_failed_validation", "3", "return_type_mismatch"},
	}
	tests[8].graph.(map[string]any)["3"].(map[string]any)["inputs"].(map[string]any)["images"] = []any{"2"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := map[string]any{"client_id": "x"}
			if tt.graph != nil {
				body["prompt"] = tt.graph
			}
			code, out := postJSON(t, s.URL+"/api/prompt", body)
			e, _ := out["error"].(map[string]any)
			if code != 400 || e["type"] != tt.errType {
				t.Fatalf("got %d %v, want 400 %s", code, out, tt.errType)
			}
			ne := out["node_errors"].(map[string]any)
			if tt.node == "" {
				if len(ne) != 0 {
					t.Errorf("node_errors %v, want none", ne)
				}
				return
			}
			n, _ := ne[tt.node].(map[string]any)
			errs, _ := n["errors"].([]any)
			if len(errs) == 0 || errs[0].(map[string]any)["type"] != tt.nodeError || !slices.Equal(n["dependent_outputs"].([]any), []any{"3"}) {
				t.Errorf("node_errors %v, want %s on node %s for output 3", ne, tt.nodeError, tt.node)
			}
		})
	}
	if len(s.Pending()) != 0 || len(s.Executions()) != 0 {
		t.Errorf("refused prompts were queued: %v", s.Pending())
	}
	t.Run("one bad output of two", func(t *testing.T) {
		g := ddcolor("old.png", "x", 512)
		g["9"] = map[string]any{"class_type": "PreviewImage", "inputs": map[string]any{"images": []any{"1", 1}}}
		code, out := postJSON(t, s.URL+"/prompt", map[string]any{"prompt": g})
		ne := out["node_errors"].(map[string]any)
		if code != 200 || ne["9"] == nil || out["prompt_id"] == nil {
			t.Errorf("got %d %v, want the prompt queued with node 9's error", code, out)
		}
	})
}

// TestInterrupt checks /interrupt by prompt_id (only the running one)
// and globally.
func TestInterrupt(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{Hold: true})
	ctx := ctxT(t)
	c := dial(t, s, "/ws?clientId=a")
	c.next()
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
	frames := c.until(promptDone(p2))
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
	c.next()
	id := submit(t, s, "a", ddcolor("old.png", "f", 512))
	if err := s.WaitHeld(ctx, id); err != nil {
		t.Fatal(err)
	}
	s.Fail(id, "CUDA out of memory")
	var failure map[string]any
	for _, f := range c.until(promptDone(id)) {
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

// TestFiles checks uploads (renaming, duplicates), SaveImage's real PNG
// and /view's path checks.
func TestFiles(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{})
	if got := upload(t, s, "old.png", "", comfytest.PNG(40, 24))["name"]; got != "old.png" {
		t.Errorf("same content uploaded as %v, want old.png", got)
	}
	if got := upload(t, s, "old.png", "", comfytest.PNG(30, 20))["name"]; got != "old (1).png" {
		t.Errorf("other content uploaded as %v, want old (1).png", got)
	}
	code, out := postJSON(t, s.URL+"/prompt", map[string]any{"prompt": ddcolor("old (1).png", "sub/dir/name", 512),
		"extra_data": map[string]any{"extra_pnginfo": map[string]any{"workflow": map[string]any{"id": "wf-1"}}, "api_key_comfy_org": "secret"}})
	id, _ := out["prompt_id"].(string)
	if code != 200 {
		t.Fatalf("POST /prompt: %d %v", code, out)
	}
	if _, err := s.WaitDone(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(filepath.Join(s.Dir("output"), "sub", "dir", "name_00001_.png"))
	if err != nil || !bytes.Contains(saved, []byte("tEXtprompt\x00{")) || !bytes.Contains(saved, []byte(`tEXtworkflow`+"\x00"+`{"id":"wf-1"}`)) {
		t.Errorf("saved PNG lacks the prompt and workflow text chunks (%v)", err)
	}
	var h map[string]map[string]any
	getJSON(t, s.URL+"/history/"+id, &h)
	if extra := h[id]["prompt"].([]any)[3].(map[string]any); extra["api_key_comfy_org"] != nil {
		t.Errorf("history shows the sensitive extra_data key: %v", extra)
	}
	resp, err := http.Get(s.URL + "/api/view?filename=name_00001_.png&subfolder=sub/dir&type=output")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(resp.Body)
	resp.Body.Close()
	if err != nil || resp.Header.Get("Content-Type") != "image/png" || img.Bounds().Dx() != 30 || img.Bounds().Dy() != 20 {
		t.Fatalf("view: %v %s, want a 30×20 PNG", err, resp.Header.Get("Content-Type"))
	}
	if r, g, b, _ := img.At(29, 19).RGBA(); r == g && g == b {
		t.Errorf("output pixel is grey (%d,%d,%d), want it colorized", r, g, b)
	}
	if _, err := os.Stat(filepath.Join(s.Dir("output"), "sub", "dir", "name_00001_.png")); err != nil {
		t.Errorf("output file: %v", err)
	}
	for q, want := range map[string]int{
		"filename=../old.png&type=input":              400,
		"filename=old.png&type=input&subfolder=../..": 403,
		"filename=old.png&type=secret":                400,
		"filename=nope.png":                           404,
		"filename=old.png&type=input":                 200,
		"filename=old.png%20%5Binput%5D":              200,
	} {
		if code := getJSON(t, s.URL+"/view?"+q, nil); code != want {
			t.Errorf("/view?%s: %d, want %d", q, code, want)
		}
	}
}

// TestCache checks that an unchanged prompt is cached: execution_cached
// lists every node and "executed" resends the first run's file.
func TestCache(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{})
	c := dial(t, s, "/ws?clientId=a")
	c.next()
	first := submit(t, s, "a", ddcolor("old.png", "c", 512))
	c.until(promptDone(first))
	second := submit(t, s, "a", ddcolor("old.png", "c", 512))
	var cachedNodes []any
	var file any
	for _, f := range c.until(promptDone(second)) {
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

// TestObjectInfo checks node_info's shape for the known nodes.
func TestObjectInfo(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{})
	var info map[string]map[string]any
	getJSON(t, s.URL+"/object_info/DDColor_Colorize", &info)
	dd := info["DDColor_Colorize"]
	size := dd["input"].(map[string]any)["required"].(map[string]any)["model_input_size"].([]any)
	opts := size[1].(map[string]any)
	if size[0] != "INT" || opts["default"] != 512.0 || opts["min"] != 32.0 || opts["max"] != 4096.0 || !slices.Equal(dd["output"].([]any), []any{"IMAGE"}) {
		t.Errorf("DDColor_Colorize %v", dd)
	}
	getJSON(t, s.URL+"/object_info", &info)
	images := info["LoadImage"]["input"].(map[string]any)["required"].(map[string]any)["image"].([]any)
	if !slices.Equal(images[0].([]any), []any{"old.png"}) || info["SaveImage"]["output_node"] != true {
		t.Errorf("LoadImage %v, SaveImage %v", info["LoadImage"], info["SaveImage"])
	}
	for _, name := range []string{"SONIC_PreData", "SONIC_Inference", "LoadAudio", "VHS_VideoCombine", "PreviewImage"} {
		if info[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	var none map[string]any
	if code := getJSON(t, s.URL+"/object_info/Primitive%20boolean%20%5BCrystools%5D", &none); code != 200 || len(none) != 0 {
		t.Errorf("unknown class: %d %v, want 200 {}", code, none)
	}
}

// TestSonic runs the Sonic workflow end to end: an animated output.
func TestSonic(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{})
	upload(t, s, "voice.wav", "", comfytest.WAV(2))
	g := map[string]any{
		"1": map[string]any{"class_type": "LoadImage", "inputs": map[string]any{"image": "old.png"}},
		"2": map[string]any{"class_type": "LoadAudio", "inputs": map[string]any{"audio": "voice.wav"}},
		"3": map[string]any{"class_type": "SONIC_PreData", "inputs": map[string]any{"image": []any{"1", 0}, "audio": []any{"2", 0}, "duration": 2.0, "min_resolution": 512, "expand_ratio": 0.2}},
		"4": map[string]any{"class_type": "SONIC_Inference", "inputs": map[string]any{"data": []any{"3", 0}, "inference_steps": 25, "dynamic_scale": 1.0, "motion_scale": 1.0, "fps": 25.0, "seed": 1}},
		"5": map[string]any{"class_type": "VHS_VideoCombine", "inputs": map[string]any{"images": []any{"4", 0}, "frame_rate": []any{"4", 1}, "loop_count": 0, "filename_prefix": "talk", "format": "image/gif", "pingpong": false, "save_output": true}},
	}
	id := submit(t, s, "", g)
	if e, err := s.WaitDone(ctxT(t), id); err != nil || e.Status != "success" {
		t.Fatalf("sonic %+v %v", e, err)
	}
	var h map[string]map[string]any
	getJSON(t, s.URL+"/history/"+id, &h)
	gifs := h[id]["outputs"].(map[string]any)["5"].(map[string]any)["gifs"].([]any)
	if f := gifs[0].(map[string]any); f["filename"] != "talk_00001.gif" || f["format"] != "image/gif" {
		t.Errorf("gifs %v", gifs)
	}
	b, err := os.ReadFile(filepath.Join(s.Dir("output"), "talk_00001.gif"))
	if err != nil || !bytes.HasPrefix(b, []byte("GIF89a")) {
		t.Errorf("video file: %v", err)
	}
}

// TestMultiUser checks Comfy-User under --multi-user: settings per user,
// unknown users refused, users created with POST /users.
func TestMultiUser(t *testing.T) {
	t.Parallel()
	s := comfytest.New(t, comfytest.Options{MultiUser: true, Users: map[string]string{"alice": "alice"}})
	do := func(method, path, user, body string) int {
		req, _ := http.NewRequest(method, s.URL+path, bytes.NewBufferString(body))
		if user != "" {
			req.Header.Set("Comfy-User", user)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := do("POST", "/settings/Comfy.Theme", "alice", `"dark"`); code != 200 {
		t.Fatalf("alice's setting: %d", code)
	}
	if code := do("GET", "/settings", "mallory", ""); code != 401 {
		t.Errorf("unknown user's settings: %d, want 401", code)
	}
	if code := do("GET", "/settings", "", ""); code != 401 {
		t.Errorf("no user under --multi-user: %d, want 401", code)
	}
	if code, _ := postJSON(t, s.URL+"/users", map[string]any{"username": "bob"}); code != 200 {
		t.Fatalf("POST /users: %d", code)
	}
	var bobID string
	for id, name := range s.Users() {
		if name == "bob" {
			bobID = id
		}
	}
	if bobID == "" {
		t.Fatalf("users %v", s.Users())
	}
	req, _ := http.NewRequest("GET", s.URL+"/settings", nil)
	req.Header.Set("Comfy-User", bobID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var bobs map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&bobs)
	resp.Body.Close()
	if len(bobs) != 0 {
		t.Errorf("bob sees settings %v", bobs)
	}
	var last comfytest.Request
	for _, r := range s.Requests() {
		if r.Path == "/settings" {
			last = r
		}
	}
	if last.ComfyUser != bobID {
		t.Errorf("request log %+v", last)
	}
}

// TestClientIDReuse checks that a socket reusing a clientId takes the
// sid over, as server.py's sockets dict does: the older socket gets
// nothing more, not even broadcasts.
func TestClientIDReuse(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{})
	first := dial(t, s, "/ws?clientId=shared")
	first.next()
	second := dial(t, s, "/ws?clientId=shared")
	second.next()
	id := submit(t, s, "shared", ddcolor("old.png", "r", 512))
	second.until(promptDone(id))
	postJSON(t, s.URL+"/queue", map[string]any{"clear": true}) // a last broadcast
	second.until(func(f frame) bool { return f.Type == "status" })
	select {
	case f := <-first.frames:
		t.Errorf("the replaced socket got %s %v", f.Type, f.Data)
	default:
	}
}

// TestNoClientID checks what the real progress hook does for a prompt
// posted without client_id: progress and previews go to every socket,
// the other messages to none.
func TestNoClientID(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{})
	c := dial(t, s, "/ws?clientId=watcher")
	c.next()
	code, out := postJSON(t, s.URL+"/prompt", map[string]any{"prompt": ddcolor("old.png", "n", 512)})
	if code != 200 {
		t.Fatalf("POST /prompt: %d %v", code, out)
	}
	if _, err := s.WaitDone(ctxT(t), out["prompt_id"].(string)); err != nil {
		t.Fatal(err)
	}
	postJSON(t, s.URL+"/queue", map[string]any{"clear": true})
	statuses := 0
	got := c.until(func(f frame) bool {
		if f.Type == "status" {
			statuses++
		}
		return statuses == 4
	})
	want := []string{"status", "status", "progress", "preview", "progress", "preview", "progress", "preview", "progress", "preview", "status", "status"}
	if !slices.Equal(kinds(got), want) {
		t.Errorf("watcher got %v, want %v", kinds(got), want)
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

// TestPassthrough checks a node class added without Run: its IMAGE
// output is its IMAGE input.
func TestPassthrough(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{Nodes: []comfytest.NodeClass{{
		Name: "ImageSharpen", Category: "image/postprocessing", Outputs: []string{"IMAGE"},
		Required: []comfytest.Input{{Name: "image", Type: "IMAGE"}, {Name: "sharpen_radius", Type: "INT", Default: 1}},
	}}})
	g := map[string]any{
		"1": map[string]any{"class_type": "LoadImage", "inputs": map[string]any{"image": "old.png"}},
		"2": map[string]any{"class_type": "ImageSharpen", "inputs": map[string]any{"image": []any{"1", 0}, "sharpen_radius": 2}},
		"3": map[string]any{"class_type": "SaveImage", "inputs": map[string]any{"images": []any{"2", 0}, "filename_prefix": "sharp"}},
	}
	id := submit(t, s, "", g)
	if e, err := s.WaitDone(ctxT(t), id); err != nil || e.Status != "success" {
		t.Fatalf("%+v %v", e, err)
	}
	f, err := os.Open(filepath.Join(s.Dir("output"), "sharp_00001_.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil || img.Bounds().Dx() != 40 || img.Bounds().Dy() != 24 {
		t.Errorf("passthrough output: %v, want the 40×24 input", err)
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

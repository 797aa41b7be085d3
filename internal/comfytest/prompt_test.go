package comfytest_test

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tollgate/tollgate/internal/comfytest"
)

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

// TestSonic runs the Sonic workflow end to end: an animated output.
func TestSonic(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{})
	upload(t, s, "voice.wav", "", comfytest.WAV(2))
	g := comfytest.SonicPrompt("old.png", "voice.wav", "talk", 2)
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

// TestPromptFields checks the fields of POST /prompt a gateway relies
// on: its own prompt_id and number are kept, and GET /prompt counts the
// prompts remaining.
func TestPromptFields(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{Hold: true})
	code, out := postJSON(t, s.URL+"/prompt", map[string]any{"prompt": ddcolor("old.png", "f", 512), "prompt_id": "minted-1", "number": 7, "client_id": "c"})
	if code != 200 || out["prompt_id"] != "minted-1" || out["number"] != 7.0 {
		t.Fatalf("POST /prompt: %d %v", code, out)
	}
	if err := s.WaitHeld(ctxT(t), "minted-1"); err != nil {
		t.Fatal(err)
	}
	submit(t, s, "c", ddcolor("old.png", "g", 544))
	var info map[string]map[string]any
	getJSON(t, s.URL+"/api/prompt", &info)
	if info["exec_info"]["queue_remaining"] != 2.0 {
		t.Errorf("GET /prompt %v, want 2 remaining", info)
	}
	if p := s.Pending(); len(p) != 1 || p[0].ClientID != "c" || p[0].Extra["client_id"] != "c" {
		t.Errorf("pending %+v", p)
	}
}

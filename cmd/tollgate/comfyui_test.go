package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/clienttest"
	"github.com/tollgate/tollgate/internal/comfytest"
)

// TestComfyUIExampleWithReplicateClient serves examples/comfyui in front of
// a ComfyUI emulator and runs its models with the official npm replicate
// client.
func TestComfyUIExampleWithReplicateClient(t *testing.T) {
	clients := clienttest.Node(t)
	s := comfytest.New(t, comfytest.Options{})
	example, err := os.ReadFile("../../examples/comfyui/tollgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.Abs("../../examples/comfyui")
	var lines []string
	for _, l := range strings.Split(string(example), "\n") {
		if !strings.HasPrefix(l, "listen:") { // the test gateway listens on a port of its own
			lines = append(lines, l)
		}
	}
	yaml := strings.NewReplacer("http://127.0.0.1:8188", s.URL, "workflow: ./", "workflow: "+dir+"/").Replace(strings.Join(lines, "\n"))
	g := setupWith(t, yaml, false)
	alice, pro := g.userKey("alice", "free"), g.userKey("carol", "pro")
	files := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return "file:" + p
	}
	photo, face, speech := write("photo.png", comfytest.PNG(80, 60)), write("face.png", comfytest.PNG(64, 64)), write("speech.wav", comfytest.WAV(1.5))
	run := func(key, model string, input map[string]any) map[string]any {
		t.Helper()
		in, _ := json.Marshal(input)
		out := clients.Run(t, time.Minute, "replicate-comfyui.mjs", g.URL+"/v1", key, model, string(in))
		var v map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("replicate-comfyui.mjs printed %s: %v", out, err)
		}
		return v
	}
	downloaded := func(t *testing.T, got map[string]any, contentType string) {
		t.Helper()
		d, _ := got["downloads"].([]any)
		if len(d) != 1 {
			t.Fatalf("client printed %v, want one output", got)
		}
		if dl := d[0].(map[string]any); dl["status"] != float64(200) || dl["contentType"] != contentType {
			t.Errorf("download %v, want 200 %s without credentials", dl, contentType)
		}
	}
	t.Run("photo/ddcolor-person gives a PNG", func(t *testing.T) {
		downloaded(t, run(alice, "photo/ddcolor-person", map[string]any{"image": photo}), "image/png")
	})
	t.Run("a free user's building mode is lowered to 680 px", func(t *testing.T) {
		downloaded(t, run(alice, "photo/ddcolor-building", map[string]any{"image": photo, "size": 1200}), "image/png")
		execs := s.Executions()
		last := execs[len(execs)-1].PromptID
		if got := historyInput(t, s, last, "2", "model_input_size"); got != float64(680) {
			t.Errorf("ComfyUI got model_input_size %v, want 680", got)
		}
	})
	t.Run("video/sonic with the audio's duration gives a video", func(t *testing.T) {
		downloaded(t, run(pro, "video/sonic", map[string]any{"image": face, "audio": speech, "duration": 1.5}), "video/mp4")
	})
	t.Run("video/sonic with a mismatched duration is refused before ComfyUI", func(t *testing.T) {
		before := len(s.Requests())
		got := run(pro, "video/sonic", map[string]any{"image": face, "audio": speech, "duration": 3})
		if got["error"] == nil || !strings.Contains(got["detail"].(string), "duration must equal the audio's length") {
			t.Errorf("client printed %v, want the refusal naming duration", got)
		}
		if after := s.Requests()[before:]; len(after) != 0 {
			t.Errorf("ComfyUI saw %v", after)
		}
	})
}

// historyInput returns a node input of a prompt ComfyUI ran.
func historyInput(t *testing.T, s *comfytest.Server, promptID, node, field string) any {
	t.Helper()
	var h map[string]struct{ Prompt []any }
	resp, err := http.Get(s.URL + "/history/" + promptID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&h)
	if len(h[promptID].Prompt) < 3 {
		t.Fatalf("no history of %s", promptID)
	}
	graph, _ := h[promptID].Prompt[2].(map[string]any)
	n, _ := graph[node].(map[string]any)
	inputs, _ := n["inputs"].(map[string]any)
	return inputs[field]
}

package jobs_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/comfytest"
	"github.com/tollgate/tollgate/internal/config"
)

const exampleDir = "../../examples/comfyui"

// setupExample runs the jobs service with examples/comfyui/tollgate.yaml,
// its upstreams pointed at a ComfyUI emulator.
func setupExample(t *testing.T) (*env, *comfytest.Server) {
	t.Helper()
	if _, err := config.Load(filepath.Join(exampleDir, "tollgate.yaml")); err != nil {
		t.Fatalf("config check of the example: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(exampleDir, "tollgate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.Abs(exampleDir)
	s := comfytest.New(t, comfytest.Options{})
	yaml := strings.NewReplacer("http://127.0.0.1:8188", s.URL, "workflow: ./", "workflow: "+dir+"/").Replace(string(b))
	return setup(t, yaml, http.NotFoundHandler()), s
}

func wavURI(seconds float64) string {
	return "data:audio/wav;base64," + base64.StdEncoding.EncodeToString(comfytest.WAV(seconds))
}

// promptInput returns a node input of the prompt ComfyUI ran for a
// prediction.
func promptInput(t *testing.T, s *comfytest.Server, predictionID, node, field string) any {
	t.Helper()
	for _, id := range s.Order() {
		if promptJob(t, s, id) != predictionID {
			continue
		}
		resp, err := http.Get(s.URL + "/history/" + id)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h map[string]struct{ Prompt []any }
		_ = json.NewDecoder(resp.Body).Decode(&h)
		graph, _ := h[id].Prompt[2].(map[string]any)
		n, _ := graph[node].(map[string]any)
		inputs, _ := n["inputs"].(map[string]any)
		return inputs[field]
	}
	t.Fatalf("ComfyUI ran no prompt for %s", predictionID)
	return nil
}

func TestComfyUIExamples(t *testing.T) {
	e, s := setupExample(t)
	face := pngURI(t, 64, 64)
	sonic := func(over map[string]any) map[string]any {
		in := map[string]any{"image": face, "audio": wavURI(2), "duration": 2.0}
		for k, v := range over {
			in[k] = v
		}
		return in
	}
	t.Run("sonic refusals happen before any GPU work, each saying what to change", func(t *testing.T) {
		before := len(s.Requests())
		for _, c := range []struct {
			name string
			over map[string]any
			want string
		}{
			{"duration off by more than 0.1 s", map[string]any{"duration": 2.5}, "duration must equal the audio's length"},
			{"min_resolution", map[string]any{"min_resolution": 2000}, "min_resolution must be 512 to 1024"},
			{"expand_ratio", map[string]any{"expand_ratio": 0.5}, "expand_ratio must be 0.1 to 0.3"},
			{"inference_steps", map[string]any{"inference_steps": 5}, "inference_steps must be 10 to 50"},
		} {
			status, _, body := e.call(t, "pro", "POST", "/v1/models/video/sonic/predictions", map[string]any{"input": sonic(c.over)})
			if status < 400 || status >= 500 || !strings.Contains(string(body), c.want) {
				t.Errorf("%s: %d %s, want a refusal saying %q", c.name, status, body, c.want)
			}
		}
		if got := s.Requests()[before:]; len(got) != 0 {
			t.Errorf("ComfyUI saw %v for refused predictions", got)
		}
	})
	t.Run("sonic within 0.1 s runs", func(t *testing.T) {
		p := e.create(t, "pro", "video/sonic", sonic(map[string]any{"duration": 2.05}), "Prefer", "wait=30")
		if link, _ := p.Output.(string); p.Status != "succeeded" || !strings.HasSuffix(strings.Split(link, "?")[0], ".mp4") {
			t.Fatalf("prediction %s %v %v, want a video link", p.Status, p.Output, p.Error)
		}
		if got := promptInput(t, s, p.ID, "3", "duration"); got != 2.05 {
			t.Errorf("SONIC_PreData got duration %v", got)
		}
	})
	t.Run("a free user's building-mode size is clamped to 680", func(t *testing.T) {
		p := e.create(t, "alice", "photo/ddcolor-building", map[string]any{"image": face, "size": 1200}, "Prefer", "wait=30")
		if p.Status != "succeeded" || p.Input["size"] != float64(680) {
			t.Fatalf("prediction %s input %v, want succeeded at size 680", p.Status, p.Input["size"])
		}
		if got := promptInput(t, s, p.ID, "2", "model_input_size"); got != float64(680) {
			t.Errorf("DDColor_Colorize got model_input_size %v, want 680", got)
		}
	})
	t.Run("a pro user runs building mode at full size", func(t *testing.T) {
		p := e.create(t, "pro", "photo/ddcolor-building", map[string]any{"image": face, "size": 1280}, "Prefer", "wait=30")
		if p.Status != "succeeded" {
			t.Fatalf("prediction %s %v", p.Status, p.Error)
		}
		if got := promptInput(t, s, p.ID, "2", "model_input_size"); got != float64(1280) {
			t.Errorf("DDColor_Colorize got model_input_size %v, want 1280", got)
		}
	})
	t.Run("person mode refuses a building size", func(t *testing.T) {
		status, _, body := e.call(t, "pro", "POST", "/v1/models/photo/ddcolor-person/predictions", map[string]any{"input": map[string]any{"image": face, "size": 1000}})
		if status != http.StatusUnprocessableEntity || !strings.Contains(string(body), "input.size") {
			t.Errorf("person mode at 1000 px: %d %s, want 422 naming input.size", status, body)
		}
	})
}

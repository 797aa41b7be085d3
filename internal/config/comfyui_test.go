package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/config"
)

func TestComfyUIJobKeys(t *testing.T) {
	for _, c := range []struct {
		name, job, want string
	}{
		{"a workflow is required", `backend: comfyui
    inputs: {image: {type: image, node: "1", field: image}}`, "workflow: required for backend comfyui"},
		{"inputs need node and field", `backend: comfyui
    workflow: ./wf.json
    inputs: {image: {type: image, node: "1"}}`, "inputs.image: backend comfyui needs node and field"},
		{"http takes no workflow", `backend: http
    workflow: ./wf.json`, "workflow: only backend comfyui runs a workflow"},
		{"http takes no node", `backend: http
    inputs: {size: {type: integer, node: "2", field: size}}`, "node and field bind inputs of backend comfyui only"},
		{"unknown backend", `backend: gpu`, "want http, comfyui or gradio"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse([]byte("jobs:\n  - name: photo/x\n    upstreams: [http://127.0.0.1:8188]\n    " + c.job + "\n"))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}

func TestComfyUIWorkflowBesideTheConfig(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tollgate.yaml")
	yaml := "jobs:\n  - name: photo/x\n    backend: comfyui\n    upstreams: [http://127.0.0.1:8188]\n    workflow: ./wf.json\n"
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(cfgPath); err == nil || !strings.Contains(err.Error(), "no such file "+filepath.Join(dir, "wf.json")) {
		t.Errorf("load without the workflow: %v, want it named", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "wf.json"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.JobModel("photo/x").Workflow; got != filepath.Join(dir, "wf.json") {
		t.Errorf("workflow %s, want it beside the config file", got)
	}
}

package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

func TestNodeRules(t *testing.T) {
	t.Parallel()
	rules := config.NodeRules{Allow: []string{"Load*", "SaveImage", "DDColor_*"}, Deny: []string{"*Shell*", "LoadImageOutput"}}
	for class, want := range map[string]bool{
		"LoadImage": true, "SaveImage": true, "DDColor_Colorize": true,
		"LoadImageOutput": false, "ShellCommand": false, "LoadShellThing": false, "PreviewImage": false, "": false,
		"Tools/ShellExec": false, "Load/Anything": true,
	} {
		if got := rules.Allows(class); got != want {
			t.Errorf("Allows(%q) = %v, want %v", class, got, want)
		}
	}
	if (config.NodeRules{Deny: []string{"*Shell*"}}).Allows("Tools/ShellExec") {
		t.Error(`deny "*Shell*" lets Tools/ShellExec run`)
	}
	if !(config.NodeRules{}).Allows("Anything") {
		t.Error("empty rules refuse a class")
	}
}

func TestComfyUIRouteKeys(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, route, want string }{
		{"a whole app under a prefix", "path: /comfy\n    type: comfyui", "want a prefix ending in /"},
		{"never public", "path: /comfy/\n    type: comfyui\n    public: true", "needs authenticated callers"},
		{"capacity at least 1", "path: /comfy/\n    type: comfyui\n    capacity: -1", "capacity: must be at least 1"},
		{"bad glob", "path: /comfy/\n    type: comfyui\n    nodes: {deny: [\"[\"]}", "nodes.deny[0]: not a glob pattern"},
		{"capacity only on comfyui", "path: /v1/\n    capacity: 2", "only a comfyui route takes capacity"},
		{"nodes only on comfyui", "path: /v1/\n    nodes: {allow: [x]}", "only a comfyui route runs workflows"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse([]byte("routes:\n  - name: comfy\n    upstreams: [http://127.0.0.1:8188]\n    " + c.route + "\n"))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
		})
	}
	cfg, err := config.Parse([]byte("routes:\n  - name: comfy\n    path: /comfy/\n    type: comfyui\n    upstreams: [http://127.0.0.1:8188]\n    timeout: 2m\n    price: {per_gpu_second: \"0.001\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	models := cfg.RouteJobModels()
	if len(models) != 1 || models[0].Name != "comfy" || models[0].Capacity != 1 || models[0].Timeout != 2*time.Minute || !models[0].Graph || !cfg.Routes[0].Strips() {
		t.Errorf("route job models %+v", models)
	}
}

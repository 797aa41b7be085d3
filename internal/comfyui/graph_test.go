package comfyui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/comfytest"
	"github.com/tollgate/tollgate/internal/comfyui"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestOwnPath(t *testing.T) {
	t.Parallel()
	const me = "tollgate/uaaaa"
	for _, c := range []struct{ in, want string }{
		{"ComfyUI", me + "/ComfyUI"},
		{"alice/colorized", me + "/alice/colorized"},
		{"../../etc/passwd", me + "/etc/passwd"},
		{"/abs/x.png", me + "/abs/x.png"},
		{`..\..\win.png`, me + "/win.png"},
		{me + "/kept.png", me + "/kept.png"},
		{"tollgate/ubbbb/theirs.png", me + "/tollgate/ubbbb/theirs.png"},
		{"x.png [output]", me + "/x.png [output]"},
		{"../x.png [temp]", me + "/x.png [temp]"},
		{"", me + "/ComfyUI"},
		{"..", me + "/ComfyUI"},
		// ComfyUI reads "[output]" without its space, cutting one
		// character more: what it joins to its directory is cleaned.
		{"y [x/../../ubbbb/f.pngg[output]", me + "/ubbbb/f.png [output]"},
		{"y [x/../../../ubbbb/f.png [input]", me + "/ubbbb/f.png [input]"},
		{"a [x/../../ubbbb/f.png]", me + "/ubbbb/f.png]"},
		{"[temp]", me + "/ComfyUI [temp]"},
	} {
		if got := comfyui.OwnPath(me, c.in); got != c.want {
			t.Errorf("OwnPath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestPrepareInputRewritesPaths(t *testing.T) {
	t.Parallel()
	s := comfytest.New(t, comfytest.Options{})
	g, err := comfyui.NewGraph(&config.JobModel{Name: "comfy", Upstreams: []string{s.URL}, MaxOutput: "1MiB"}, comfyui.GraphOptions{
		Nodes: config.NodeRules{Deny: []string{"Shell*"}},
		Plans: func(plan string) config.NodeRules {
			if plan == "free" {
				return config.NodeRules{Deny: []string{"SONIC_*"}}
			}
			return config.NodeRules{}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &tollgate.Principal{TenantID: "acme", UserID: "alice", Plan: "pro"}
	folder := comfyui.UserFolder(tollgate.Owner{TenantID: "acme", UserID: "alice"})
	prepare := func(p *tollgate.Principal, graph map[string]any) (map[string]any, error) {
		raw, _ := json.Marshal(map[string]any{"prompt": graph, "client_id": "c", "extra_data": map[string]any{"api_key_comfy_org": "secret", "x": 1}})
		out, err := g.PrepareInput(context.Background(), p, "id", raw)
		if err != nil {
			return nil, err
		}
		var in struct {
			Prompt map[string]any `json:"prompt"`
			Extra  map[string]any `json:"extra_data"`
		}
		_ = json.Unmarshal(out, &in)
		if _, ok := in.Extra["api_key_comfy_org"]; ok || in.Extra["x"] != float64(1) {
			t.Errorf("extra_data %v: want comfy.org credentials dropped, the rest kept", in.Extra)
		}
		return in.Prompt, nil
	}
	field := func(graph map[string]any, node, name string) any {
		return graph[node].(map[string]any)["inputs"].(map[string]any)[name]
	}
	t.Run("save prefixes and loaders go under the user's folder", func(t *testing.T) {
		graph := comfytest.SonicPrompt("../face.png", "tollgate/uother/a.wav", "../../out/talk", 1.5)
		got, err := prepare(p, graph)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ node, name, want string }{
			{"1", "image", folder + "/face.png"}, {"2", "audio", folder + "/tollgate/uother/a.wav"}, {"5", "filename_prefix", folder + "/out/talk"},
		} {
			if v := field(got, c.node, c.name); v != c.want {
				t.Errorf("node %s %s = %v, want %s", c.node, c.name, v, c.want)
			}
		}
		if v := field(got, "3", "duration"); v != 1.5 {
			t.Errorf("a value field changed: %v", v)
		}
	})
	t.Run("a linked path is refused", func(t *testing.T) {
		graph := comfytest.DDColorPrompt("x.png", "p", 512)
		graph["3"].(map[string]any)["inputs"].(map[string]any)["filename_prefix"] = []any{"9", 0}
		if _, err := prepare(p, graph); tollgate.ErrorCode(err) != tollgate.EForbidden || !strings.Contains(err.Error(), "filename_prefix must be a literal string") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("ComfyUI's own loaders of annotated names go under the user's folder", func(t *testing.T) {
		graph := map[string]any{"1": map[string]any{"class_type": "LoadLatent", "inputs": map[string]any{"latent": "tollgate/uother/ComfyUI_00001_.latent [output]"}},
			"2": map[string]any{"class_type": "WebcamCapture", "inputs": map[string]any{"image": "../x.png"}}}
		got, err := prepare(p, graph)
		if err != nil {
			t.Fatal(err)
		}
		if v := field(got, "1", "latent"); v != folder+"/tollgate/uother/ComfyUI_00001_.latent [output]" {
			t.Errorf("LoadLatent's latent = %v, want it under the user's folder", v)
		}
		if v := field(got, "2", "image"); v != folder+"/x.png" {
			t.Errorf("WebcamCapture's image = %v, want it under the user's folder", v)
		}
	})
	t.Run("a path outside the user's files is refused in any field", func(t *testing.T) {
		for _, v := range []string{"/srv/comfy/output/tollgate/uother/a.mp4", "output/tollgate/uother/a.mp4", `..\output\a.mp4`, `C:\ComfyUI\output\a.mp4`,
			"~/ComfyUI/output/a.mp4", "output/TOLLGATE/UOTHER/a.mp4", "output/tollgate", "http://127.0.0.1:8188/view?filename=a.png&subfolder=tollgate%2Fuother&type=output",
			"../../etc/passwd", "..", "tollgate%2Fuother%2Fa.png"} {
			graph := comfytest.DDColorPrompt("x.png", "p", 512)
			graph["8"] = map[string]any{"class_type": "VHS_LoadVideoPath", "inputs": map[string]any{"video": v}}
			if _, err := prepare(p, graph); tollgate.ErrorCode(err) != tollgate.EForbidden || !strings.Contains(err.Error(), "node 8 (VHS_LoadVideoPath): video names a path outside your own files") {
				t.Errorf("video %q: %v, want it refused", v, err)
			}
		}
		for _, v := range []string{"output/" + folder + "/a.mp4", "a photo of a cat, 35mm f/1.8 ... at dusk", "video/h264-mp4", "A: a cat", "a medieval tollgate at dusk", "wait .. what"} {
			graph := comfytest.DDColorPrompt("x.png", "p", 512)
			graph["8"] = map[string]any{"class_type": "VHS_LoadVideoPath", "inputs": map[string]any{"video": v}}
			if _, err := prepare(p, graph); err != nil {
				t.Errorf("video %q: %v, want it taken", v, err)
			}
		}
	})
	t.Run("a link into a field named as a path is refused", func(t *testing.T) {
		graph := comfytest.DDColorPrompt("x.png", "p", 512)
		graph["8"] = map[string]any{"class_type": "StringConcatenate", "inputs": map[string]any{"string_a": "tollg", "string_b": "ate/uother"}}
		graph["9"] = map[string]any{"class_type": "LoadTrainingDataset", "inputs": map[string]any{"folder_name": []any{"8", 0}}}
		if _, err := prepare(p, graph); tollgate.ErrorCode(err) != tollgate.EForbidden || !strings.Contains(err.Error(), "folder_name must be a literal string") {
			t.Errorf("a linked folder_name: %v", err)
		}
		graph = comfytest.DDColorPrompt("x.png", "p", 512)
		graph["8"] = map[string]any{"class_type": "PrimitiveString", "inputs": map[string]any{"value": "a cat"}}
		graph["9"] = map[string]any{"class_type": "CLIPTextEncode", "inputs": map[string]any{"text": []any{"8", 0}, "clip": []any{"7", 0}}}
		if _, err := prepare(p, graph); err != nil {
			t.Errorf("a linked prompt text: %v, want it taken", err)
		}
	})
	t.Run("a link into a field ComfyUI declares a path is refused", func(t *testing.T) {
		graph := comfytest.DDColorPrompt("x.png", "p", 512)
		graph["8"] = map[string]any{"class_type": "StringConcatenate", "inputs": map[string]any{"string_a": "output/tollg", "string_b": "ate/uother/a.mp4", "delimiter": ""}}
		graph["9"] = map[string]any{"class_type": "VHS_LoadVideoPath", "inputs": map[string]any{"video": []any{"8", 0}}}
		if _, err := prepare(p, graph); tollgate.ErrorCode(err) != tollgate.EForbidden || !strings.Contains(err.Error(), "node 9 (VHS_LoadVideoPath): video must be a literal string") {
			t.Errorf("a linked VHS video path: %v", err)
		}
	})
	t.Run("a workflow of too many node classes is refused before ComfyUI is asked of them", func(t *testing.T) {
		graph := comfytest.DDColorPrompt("x.png", "p", 512)
		for i := range comfyui.MaxClasses {
			graph[fmt.Sprint(100+i)] = map[string]any{"class_type": fmt.Sprintf("Fake%d", i), "inputs": map[string]any{"v": "x"}}
		}
		before := len(s.Requests())
		if _, err := prepare(p, graph); tollgate.ErrorCode(err) != tollgate.EInvalid || !strings.Contains(err.Error(), "at most 256 node classes") {
			t.Errorf("%d classes: %v", len(graph), err)
		}
		if n := len(s.Requests()) - before; n > 0 {
			t.Errorf("ComfyUI was asked %d times", n)
		}
	})
	t.Run("the route's and the plan's node rules", func(t *testing.T) {
		graph := comfytest.SonicPrompt("f.png", "a.wav", "p", 1)
		if _, err := prepare(&tollgate.Principal{TenantID: "acme", UserID: "bob", Plan: "free"}, graph); tollgate.ErrorCode(err) != tollgate.EForbidden ||
			!strings.Contains(err.Error(), "node 3 (SONIC_PreData)") || !strings.Contains(err.Error(), "node 4 (SONIC_Inference)") {
			t.Errorf("a free user's Sonic workflow: %v", err)
		}
		graph = comfytest.DDColorPrompt("x.png", "p", 512)
		graph["7"] = map[string]any{"class_type": "ShellExec", "inputs": map[string]any{}}
		if _, err := prepare(p, graph); tollgate.ErrorCode(err) != tollgate.EForbidden || !strings.Contains(err.Error(), "node 7 (ShellExec)") {
			t.Errorf("a denied class: %v", err)
		}
	})
}

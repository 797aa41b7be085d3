package comfyui_test

import (
	"context"
	"encoding/json"
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

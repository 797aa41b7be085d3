package comfyui

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestUserFolder(t *testing.T) {
	a := UserFolder(tollgate.Owner{TenantID: "acme", UserID: "alice"})
	for _, o := range []tollgate.Owner{{TenantID: "acme", UserID: "bob"}, {TenantID: "other", UserID: "alice"}, {TenantID: "acmealice"}, {TenantID: "acme\x00alice"}} {
		if UserFolder(o) == a {
			t.Errorf("%+v shares alice's folder %s", o, a)
		}
	}
	if b := UserFolder(tollgate.Owner{TenantID: "../..", UserID: "/etc"}); strings.Contains(b, "..") || strings.Count(b, "/") != 1 {
		t.Errorf("folder %s of a hostile id leaves tollgate/", b)
	}
}

func TestPrefixOutputs(t *testing.T) {
	for _, c := range []struct{ prefix, want string }{
		{"ddcolor", "tollgate/u1/ddcolor"},
		{"../../other/x", "tollgate/u1/x"},
		{`..\..\x`, "tollgate/u1/x"},
		{"/abs/name", "tollgate/u1/name"},
		{"..", "tollgate/u1/ComfyUI"},
		{"", "tollgate/u1/ComfyUI"},
	} {
		w := Workflow{"3": map[string]any{"class_type": "SaveImage", "inputs": map[string]any{"filename_prefix": c.prefix}}}
		w.PrefixOutputs("tollgate/u1")
		if got := w["3"].(map[string]any)["inputs"].(map[string]any)["filename_prefix"]; got != c.want {
			t.Errorf("prefix %q became %v, want %s", c.prefix, got, c.want)
		}
	}
}

func TestParseSpec(t *testing.T) {
	for _, c := range []struct {
		decl    string
		options []string
		min     float64
		max     float64
	}{
		{`["INT", {"default": 512, "min": 32, "max": 4096}]`, nil, 32, 4096},
		{`[["a.pth", "b.pth"]]`, []string{"a.pth", "b.pth"}, 0, 0},
		{`["COMBO", {"options": ["x", "y"]}]`, []string{"x", "y"}, 0, 0},
		{`["IMAGE"]`, nil, 0, 0},
	} {
		var decl []json.RawMessage
		if err := json.Unmarshal([]byte(c.decl), &decl); err != nil {
			t.Fatal(err)
		}
		s := parseSpec(decl)
		if strings.Join(s.options, ",") != strings.Join(c.options, ",") {
			t.Errorf("%s: options %v, want %v", c.decl, s.options, c.options)
		}
		if (s.min == nil) != (c.min == 0) || (s.min != nil && *s.min != c.min) || (s.max != nil && *s.max != c.max) {
			t.Errorf("%s: bounds %v %v, want %v %v", c.decl, s.min, s.max, c.min, c.max)
		}
	}
}

func TestLoadWorkflow(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "wf.json")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	inputs := map[string]config.JobInput{"image": {Type: "image", Node: "9", Field: "image"}}
	for _, c := range []struct{ body, want string }{
		{`not json`, "not API-format JSON"},
		{`{"1": {"inputs": {}}}`, `node "1" has no class_type`},
		{`{"1": {"class_type": "LoadImage", "inputs": {}}}`, `inputs.image: the workflow has no node "9"`},
	} {
		_, err := LoadWorkflow(&config.JobModel{Workflow: write(c.body), Inputs: inputs})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.body, err, c.want)
		}
	}
}

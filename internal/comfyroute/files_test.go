package comfyroute

import (
	"testing"

	"github.com/tollgate/tollgate/internal/comfyui"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestCheckFile(t *testing.T) {
	t.Parallel()
	alice, bob := tollgate.Owner{TenantID: "acme", UserID: "alice"}, tollgate.Owner{TenantID: "acme", UserID: "bob"}
	mine, theirs := comfyui.UserFolder(alice), comfyui.UserFolder(bob)
	rt := &Route{model: &config.JobModel{Upstreams: []string{"http://a", "http://b"}}, files: newFileIndex()}
	rt.files.addOutputs(alice, "http://b", map[string]any{"images": []any{
		map[string]any{"filename": "ComfyUI_temp_abcde_00001_.png", "subfolder": "", "type": "temp"},
		// What a (custom) node claims it made does not make another
		// user's file alice's.
		map[string]any{"filename": "ComfyUI_00001_.png", "subfolder": theirs, "type": "output"},
		map[string]any{"filename": "ComfyUI_00002_.png", "subfolder": `tollgate\` + theirs[len("tollgate/"):], "type": "output"},
		map[string]any{"filename": "ComfyUI_00003_.png", "subfolder": "TOLLGATE/" + theirs[len("tollgate/"):], "type": "input"},
		map[string]any{"filename": "ComfyUI_00004_.png", "subfolder": "tollgate", "type": "output"}}})
	for _, c := range []struct {
		name, file, sub, typ string
		code, up             string
	}{
		{"an output under the own folder", "x.png", mine, "output", "", "http://a"},
		{"an upload in a subfolder of it", "old.png", mine + "/alice", "input", "", "http://a"},
		{"a preview the user's prompt made, where it was made", "ComfyUI_temp_abcde_00001_.png", "", "temp", "", "http://b"},
		{"another's output", "x.png", theirs, "output", tollgate.ENotFound, ""},
		{"another's preview", "ComfyUI_temp_zzzzz_00001_.png", "", "temp", tollgate.ENotFound, ""},
		{"the top of output", "x.png", "", "output", tollgate.ENotFound, ""},
		{"a name that climbs out", "../x.png", mine, "output", tollgate.EInvalid, ""},
		{"a subfolder that climbs out", "x.png", mine + "/../" + theirs, "output", tollgate.EInvalid, ""},
		{"an annotation naming another dir", "x.png [input]", theirs, "output", tollgate.ENotFound, ""},
		{"a path in the name", theirs + "/x.png", "", "output", tollgate.ENotFound, ""},
		{"an unknown type", "x.png", mine, "models", tollgate.EInvalid, ""},
		{"another's output a node claimed", "ComfyUI_00001_.png", theirs, "output", tollgate.ENotFound, ""},
		{"another's output claimed with a backslash", "ComfyUI_00002_.png", theirs, "output", tollgate.ENotFound, ""},
		{"another's upload claimed in capitals", "ComfyUI_00003_.png", "TOLLGATE/" + theirs[len("tollgate/"):], "input", tollgate.ENotFound, ""},
		{"the root of users' folders claimed", "ComfyUI_00004_.png", "tollgate", "output", tollgate.ENotFound, ""},
	} {
		f, up, err := rt.checkFile(alice, c.file, c.sub, c.typ)
		if code := tollgate.ErrorCode(err); err != nil && code != c.code || err == nil && c.code != "" {
			t.Errorf("%s: error %v, want %q", c.name, err, c.code)
			continue
		}
		if err == nil && up != c.up {
			t.Errorf("%s: served from %s (%+v), want %s", c.name, up, f, c.up)
		}
	}
}

func TestAdminOnly(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]bool{
		"/free": true, "/internal/logs": true, "/manager/queue/start": true, "/customnode/getlist": true,
		"/v2/manager/queue/status": true, "/assets": true, "/assets/12/content": true, "/assetsx": false, "/object_info": false, "/freeze": false, "/view": false, "/settings": false,
	} {
		if got := adminOnly(path); got != want {
			t.Errorf("adminOnly(%s) = %v, want %v", path, got, want)
		}
	}
}

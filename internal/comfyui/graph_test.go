package comfyui_test

import (
	"testing"

	"github.com/tollgate/tollgate/internal/comfyui"
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
	} {
		if got := comfyui.OwnPath(me, c.in); got != c.want {
			t.Errorf("OwnPath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

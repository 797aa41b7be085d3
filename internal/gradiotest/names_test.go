package gradiotest

import (
	"strings"
	"testing"
)

func TestCleanName(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"voice.wav", "voice.wav"},
		{"my voice (1).wav", "my voice (1).wav"},
		{"dir/sub/voice.wav", "voice.wav"},
		{`a<b>c:d"e|f?g*h.wav`, "abcdefgh.wav"},
		{"$(rm -rf).w`a`v", "(rm -rf).wav"},
		{"#?.txt", "#.txt"},
		{"?.txt", "file.txt"},
		{"CON.txt", "_CON.txt"},
		{"nul", "_nul"},
		{".bashrc", ".bashrc"},
		{"声音.wav", "声音.wav"},
		{"???", ""},
		{"..", ""},
		{strings.Repeat("é", 150) + ".wav", strings.Repeat("é", 98) + ".wav"},
	} {
		if got := cleanName(c.in); got != c.want {
			t.Errorf("cleanName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

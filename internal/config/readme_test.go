package config_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/config"
)

// readme returns the repository's README.md.
func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	return string(b)
}

// TestReadmeYAMLBlocksLoad loads every ```yaml block of the README with the
// real config loader. Every block is a whole config file; none is a
// fragment, so none is skipped.
func TestReadmeYAMLBlocksLoad(t *testing.T) {
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(readme(t), -1)
	if len(blocks) < 2 {
		t.Fatalf("found %d yaml blocks in the README, want the route and the cluster examples", len(blocks))
	}
	for i, b := range blocks {
		if _, err := config.Parse([]byte(b[1])); err != nil {
			t.Errorf("README yaml block %d does not load:\n%s\nerror: %v", i+1, b[1], err)
		}
	}
}

// TestReadmeListsEveryKey keeps the README's configuration reference and
// the Config struct in step: every key of the struct has a row, and every
// row names a key of the struct.
func TestReadmeListsEveryKey(t *testing.T) {
	text := readme(t)
	start := strings.Index(text, "## Configuration\n")
	end := strings.Index(text[start+1:], "\n## ")
	if start < 0 || end < 0 {
		t.Fatal("README has no Configuration section")
	}
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\| ([^|]*)\\|")
	listed := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(text[start:start+1+end], -1) {
		listed[m[1]] = true
		if strings.TrimSpace(m[2]) == "" {
			t.Errorf("README row %s has no default", m[1])
		}
	}
	keys := config.Keys()
	for _, k := range keys {
		if !listed[k] {
			t.Errorf("README's configuration reference lacks %s", k)
		}
	}
	for k := range listed {
		if !slices.Contains(keys, k) {
			t.Errorf("README's configuration reference lists %s, which is no key of the config", k)
		}
	}
}

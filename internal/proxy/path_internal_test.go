package proxy

import "testing"

func TestHasDotSegment(t *testing.T) {
	for path, want := range map[string]bool{
		"/":                  false,
		"/v1/chat":           false,
		"/files/.hidden":     false,
		"/files/a..b":        false,
		"/files/..data":      false,
		"/a/./b":             true,
		"/a/../b":            true,
		"/a/..":              true,
		"/a/.":               true,
		"/public/../private": true,
		"/x/.well/../y":      true,
	} {
		if got := hasDotSegment(path); got != want {
			t.Errorf("hasDotSegment(%q) = %v, want %v", path, got, want)
		}
	}
}

package auth

import "testing"

// TestSafeNext keeps a login's redirect on the gateway: anything but a
// local path becomes /ui/.
func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/":                   "/ui/",
		"/comfy/?q=1":            "/comfy/?q=1",
		"":                       "/ui/",
		"https://evil.example/":  "/ui/",
		"//evil.example/":        "/ui/",
		"/\\evil.example":        "/ui/",
		"javascript:alert(1)":    "/ui/",
		"/ok\r\nSet-Cookie: x=1": "/ui/",
		"ui/":                    "/ui/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCSRFTokenPerSession: each session has its own token, stable for
// the session.
func TestCSRFTokenPerSession(t *testing.T) {
	a, b := CSRFToken("family-a"), CSRFToken("family-b")
	if a == b || a != CSRFToken("family-a") || len(a) < 40 {
		t.Fatalf("tokens %q, %q", a, b)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCLI(t *testing.T) {
	up := newUpstream(t)
	g := setup(t, routeYAML(up.URL))

	t.Run("token mint gives a working token", func(t *testing.T) {
		g.mustCLI("user", "add", "minty", "--password", "minty-password", "--tenant", "acme", "--role", "user", "--plan", "free")
		tok := strings.TrimSpace(g.mustCLI("token", "mint", "--user", "minty", "--ttl", "1h"))
		if r, b := g.do("GET", "/ocr/doc", tok, ""); r.StatusCode != 200 {
			t.Fatalf("minted token refused: %d %s", r.StatusCode, b)
		}
		if got := (*up.last.Load()).Get("X-Tenant-ID"); got != "acme" {
			t.Fatalf("upstream saw tenant %q", got)
		}
	})
	t.Run("user list shows users without secrets", func(t *testing.T) {
		out := g.mustCLI("user", "list")
		if !strings.Contains(out, "minty") || !strings.Contains(out, "admin") || strings.Contains(out, "argon2") {
			t.Fatalf("user list:\n%s", out)
		}
	})
	t.Run("key list shows keys but never secrets", func(t *testing.T) {
		key := strings.TrimSpace(g.mustCLI("key", "create", "--user", "minty", "--name", "ci"))
		out := g.mustCLI("key", "list", "--user", "minty")
		// tg_<id>_<secret>: the id is 16 hex digits; the secret may hold
		// "_" itself.
		rest, ok := strings.CutPrefix(key, "tg_")
		_, secret, ok2 := strings.Cut(rest, "_")
		if !ok || !ok2 || len(secret) < 16 {
			t.Fatalf("key create printed %q, want tg_<id>_<secret>", key)
		}
		if !strings.Contains(out, "ci") || strings.Contains(out, secret) {
			t.Fatalf("key list:\n%s", out)
		}
	})
	t.Run("keys rotate publishes the new key and keeps the old", func(t *testing.T) {
		old := g.login("admin", adminPassword).AccessToken
		g.mustCLI("keys", "rotate", "--now")
		if !eventually(3*time.Second, func() bool { return len(jwksKids(t, g)) == 2 }) {
			t.Fatalf("JWKS has %v after rotation, want 2 keys", jwksKids(t, g))
		}
		if r, _ := g.do("GET", "/v1/me", old, ""); r.StatusCode != 200 {
			t.Fatalf("token signed by the retired key refused: %d", r.StatusCode)
		}
	})
	t.Run("bad input is a clear error and changes nothing", func(t *testing.T) {
		cases := []struct {
			args []string
			want string
		}{
			{[]string{"user", "add", "x", "--password", "short", "--tenant", "acme"}, "at least 8 characters"},
			{[]string{"user", "add", "y", "--password", "long-enough", "--role", "wizard"}, "unknown role"},
			{[]string{"user", "add", "z", "--password", "long-enough", "--plan", "platinum"}, "unknown plan"},
			{[]string{"user", "add", "minty", "--password", "long-enough"}, "exists"},
			{[]string{"user", "disable", "nobody"}, "not found"},
			{[]string{"key", "create"}, "--user is required"},
			{[]string{"key", "revoke", "nokey"}, "not found"},
			{[]string{"token", "mint", "--user", "minty", "--ttl", "48h"}, "--ttl"},
			{[]string{"user", "frobnicate"}, ""},
		}
		before := g.mustCLI("user", "list")
		for _, c := range cases {
			out, err := g.cli(c.args...)
			if err == nil {
				t.Errorf("tollgate %v succeeded:\n%s", c.args, out)
				continue
			}
			if !strings.Contains(err.Error()+out, c.want) {
				t.Errorf("tollgate %v: %v %s, want it to say %q", c.args, err, out, c.want)
			}
		}
		if after := g.mustCLI("user", "list"); after != before {
			t.Fatalf("failed commands changed the users:\n%s\n---\n%s", before, after)
		}
	})
}

func jwksKids(t *testing.T, g *testGateway) []string {
	_, body := g.do("GET", "/.well-known/jwks.json", "", "")
	var set struct{ Keys []struct{ Kid string } }
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

func TestCommandLineErrors(t *testing.T) {
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := Run(context.Background(), args, Env{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }})
		return out.String(), err
	}
	if out, err := run(); err == nil || !strings.Contains(out, "Usage:") {
		t.Fatalf("no args: %v %q", err, out)
	}
	if out, err := run("launch"); err == nil || !strings.Contains(out, `unknown command "launch"`) {
		t.Fatalf("unknown command: %v %q", err, out)
	}
	if out, err := run("version"); err != nil || !strings.HasPrefix(out, "tollgate ") {
		t.Fatalf("version: %v %q", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("routes: [{name: a, path: /a, upstreams: [ftp://x]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := run("serve", "--config", bad); err == nil || !strings.Contains(err.Error(), "routes[0].upstreams[0]") {
		t.Fatalf("bad config: %v", err)
	}
	if _, err := run("migrate", "--config", filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("missing config accepted")
	}
}

// TestBanCommand bans an address from the command line: the running
// gateway refuses it, and serves it again once the ban is lifted.
func TestBanCommand(t *testing.T) {
	up := newUpstream(t)
	g := setup(t, routeYAML(up.URL))
	tok := g.login("admin", adminPassword).AccessToken
	if out, err := g.cli("ban", "add", "not-an-ip"); err == nil {
		t.Fatalf("ban of a non-address accepted: %s", out)
	}
	g.mustCLI("ban", "add", "127.0.0.1", "--for", "1h", "--reason", "test")
	if out := g.mustCLI("ban", "list"); !strings.Contains(out, "127.0.0.1") || !strings.Contains(out, "test") {
		t.Fatalf("ban list:\n%s", out)
	}
	if !eventually(10*time.Second, func() bool { r, _ := g.do("GET", "/ocr/x", tok, ""); return r.StatusCode == 403 || r.StatusCode == 429 }) {
		t.Fatal("banned address still served after 10 s")
	}
	g.mustCLI("ban", "lift", "127.0.0.1")
	if !eventually(10*time.Second, func() bool { r, _ := g.do("GET", "/ocr/x", tok, ""); return r.StatusCode == 200 }) {
		t.Fatal("address still refused 10 s after the ban was lifted")
	}
}

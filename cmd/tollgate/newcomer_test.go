package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cliResult is what a user sees of one command: its streams and the line
// main prints for an error.
type cliResult struct {
	stdout, stderr string
	err            error
}

// shown is what the terminal shows, main's error line included.
func (r cliResult) shown() string {
	s := r.stdout + r.stderr
	if r.err != nil && !errors.Is(r.err, errUsage) {
		s += "tollgate: " + r.err.Error() + "\n"
	}
	return s
}

// runCLI runs a command as main does, with env as the environment and
// stdin as its input.
func runCLI(env map[string]string, stdin string, args ...string) cliResult {
	var out, errOut bytes.Buffer
	err := Run(context.Background(), args, Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string { return env[k] },
	})
	return cliResult{out.String(), errOut.String(), err}
}

// loginStatus logs in and returns the status code.
func loginStatus(g *testGateway, user, password string) int {
	resp, _ := g.do("POST", "/auth/login", "", `{"username":"`+user+`","password":"`+password+`"}`)
	return resp.StatusCode
}

// TestQuickstartAdminPassword follows the quickstart on a store an
// earlier start left behind: the ignored TOLLGATE_ADMIN_PASSWORD is said
// loudly, and user passwd sets the password the README uses.
func TestQuickstartAdminPassword(t *testing.T) {
	dir := t.TempDir()
	first := setupIn(t, dir, "", gatewayOptions{Demo: true}, map[string]string{}) // the README's first run: no variable
	if !strings.Contains(first.stderr.String(), `created user "admin" with password: `) {
		t.Fatalf("first start did not print the admin password:\n%s", first.stderr)
	}
	first.stop()

	env := map[string]string{"TOLLGATE_ADMIN_PASSWORD": "change-me-now"}
	g := setupIn(t, dir, "", gatewayOptions{Demo: true}, env)
	if out := g.stderr.String(); !strings.Contains(out, "WARNING: TOLLGATE_ADMIN_PASSWORD is ignored") || !strings.Contains(out, "tollgate user passwd admin") {
		t.Fatalf("restart with TOLLGATE_ADMIN_PASSWORD and an existing admin: no warning\n%s", out)
	}
	if code := loginStatus(g, "admin", "change-me-now"); code != 401 {
		t.Fatalf("login with the ignored password: %d, want 401", code)
	}

	t.Run("passwd with --password", func(t *testing.T) {
		g.mustCLI("user", "passwd", "admin", "--password", "change-me-now")
		if code := loginStatus(g, "admin", "change-me-now"); code != 200 {
			t.Fatalf("login after user passwd: %d", code)
		}
	})
	t.Run("passwd from stdin revokes the tokens held", func(t *testing.T) {
		tok := g.login("admin", "change-me-now").AccessToken
		r := runCLI(env, "from-stdin-password\n", "user", "passwd", "admin", "--config", g.Config)
		if r.err != nil {
			t.Fatalf("user passwd from stdin: %v\n%s", r.err, r.shown())
		}
		if code := loginStatus(g, "admin", "from-stdin-password"); code != 200 {
			t.Fatalf("login with the password from stdin: %d", code)
		}
		if !eventually(3*time.Second, func() bool { r, _ := g.do("GET", "/v1/me", tok, ""); return r.StatusCode == 401 }) {
			t.Fatal("a token issued before the password change still works")
		}
	})
	t.Run("passwd refuses a short or missing password", func(t *testing.T) {
		if r := runCLI(env, "", "user", "passwd", "admin", "--config", g.Config); r.err == nil || !strings.Contains(r.shown(), "--password is missing") {
			t.Fatalf("empty stdin: %v\n%s", r.err, r.shown())
		}
		if r := runCLI(env, "", "user", "passwd", "admin", "--password", "short", "--config", g.Config); r.err == nil || !strings.Contains(r.shown(), "at least 8") {
			t.Fatalf("short password: %v\n%s", r.err, r.shown())
		}
		if code := loginStatus(g, "admin", "from-stdin-password"); code != 200 {
			t.Fatalf("a refused passwd changed the password: login %d", code)
		}
	})
}

// TestAdminCreatedWhenNoneHasTheRole: a store that has users but no admin
// (made by the CLI before the first start) gets its admin at start.
func TestAdminCreatedWhenNoneHasTheRole(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tollgate.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: "+filepath.Join(dir, "data")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(nil, "", "user", "add", "bob", "--password", "bob-password", "--config", cfg); r.err != nil {
		t.Fatalf("user add: %v\n%s", r.err, r.shown())
	}
	g := setupIn(t, dir, "", gatewayOptions{}, map[string]string{"TOLLGATE_ADMIN_PASSWORD": "change-me-now"})
	if code := loginStatus(g, "admin", "change-me-now"); code != 200 {
		t.Fatalf("admin login on a store that had only bob: %d\n%s", code, g.stderr)
	}
}

// TestNewStoreIsAnnounced: a command run where no store exists says it
// created one, with the path, and only the first time.
func TestNewStoreIsAnnounced(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tollgate.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: "+filepath.Join(dir, "elsewhere")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(nil, "", "user", "add", "bob", "--password", "bob-password", "--config", cfg)
	want := "no store at " + filepath.Join(dir, "elsewhere", "tollgate.db") + ": created a new, empty one"
	if r.err != nil || !strings.Contains(r.stderr, want) {
		t.Fatalf("first command on a new store: %v\nstderr: %s\nwant it to say %q", r.err, r.stderr, want)
	}
	if r := runCLI(nil, "", "user", "list", "--config", cfg); r.err != nil || strings.Contains(r.stderr, "no store") || !strings.Contains(r.stdout, "bob") {
		t.Fatalf("second command: %v\nstdout %s\nstderr %s", r.err, r.stdout, r.stderr)
	}
}

// TestHelpOnEveryCommand asks every command and group for --help: each
// answers on stdout with its synopsis and flags, and succeeds.
func TestHelpOnEveryCommand(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range synopses {
		for _, name := range []string{s.name, strings.Fields(s.name)[0]} {
			if seen[name] {
				continue
			}
			seen[name] = true
			args := append(strings.Fields(name), "--help")
			r := runCLI(nil, "", args...)
			if r.err != nil || !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, s.line) {
				t.Errorf("tollgate %s: %v\nstdout: %s\nstderr: %s\nwant the synopsis %q", strings.Join(args, " "), r.err, r.stdout, r.stderr, s.line)
			}
			if name == s.name && name != "version" && !strings.Contains(r.stdout, "-config") {
				t.Errorf("tollgate %s: the flags are not described:\n%s", strings.Join(args, " "), r.stdout)
			}
		}
	}
}

// TestCommandsAUserCanRead runs the commands a newcomer trips over.
func TestCommandsAUserCanRead(t *testing.T) {
	up := newUpstream(t)
	g := setup(t, routeYAML(up.URL)+"tokens: {access_ttl: 15m}\n")
	cli := func(stdin string, args ...string) cliResult {
		return runCLI(g.env, stdin, append(args, "--config", g.Config)...)
	}

	t.Run("errors have one prefix and say what is missing", func(t *testing.T) {
		cases := []struct {
			args []string
			want string
		}{
			{[]string{"user", "add", "bob"}, "tollgate: user add: --password is missing"},
			{[]string{"user", "add", "--password", "long-enough"}, "tollgate: user add: user NAME is missing"},
			{[]string{"invoice", "--tenant", "nope", "--month", "2026-11"}, `tollgate: invoice: tenant "nope" not found`},
			{[]string{"usage", "--user", "nobody"}, `tollgate: usage: user "nobody" not found`},
			{[]string{"usage", "--tenant", "nope"}, `tollgate: usage: tenant "nope" not found`},
			{[]string{"user", "delete", "nobody"}, `tollgate: user delete: user "nobody" not found`},
		}
		for _, c := range cases {
			r := cli("", c.args...)
			if r.err == nil || !strings.Contains(r.shown(), c.want) || strings.Contains(r.shown(), "tollgate: tollgate") {
				t.Errorf("tollgate %s: %v\n%s\nwant %q", strings.Join(c.args, " "), r.err, r.shown(), c.want)
			}
		}
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		if err := os.WriteFile(bad, []byte("plans:\n  free:\n    rate_limt: 10/m\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runCLI(nil, "", "serve", "--config", bad)
		if want := "tollgate: config " + bad + ": line 3: plans.free.rate_limt: unknown key; did you mean rate_limit?\n"; r.shown() != want {
			t.Errorf("serve with a typo:\n%s\nwant\n%s", r.shown(), want)
		}
	})
	t.Run("defaults match the synopsis", func(t *testing.T) {
		r := cli("", "user", "add", "carl", "--password", "carl-password")
		if r.err != nil || !strings.Contains(r.stdout, "tenant default, role user") {
			t.Fatalf("user add without --tenant and --role: %v\n%s", r.err, r.shown())
		}
		r = cli("", "token", "mint", "--user", "carl")
		if r.err != nil {
			t.Fatalf("token mint: %v\n%s", r.err, r.shown())
		}
		_, expStr, _ := strings.Cut(strings.TrimSpace(r.stderr), "expires ")
		exp, err := time.Parse(time.RFC3339, expStr)
		if err != nil || exp.Sub(time.Now()) < 14*time.Minute || exp.Sub(time.Now()) > 16*time.Minute {
			t.Fatalf("token mint without --ttl expires %q, want in 15m (%v)", expStr, err)
		}
	})
	t.Run("usage --to counts its whole day and names the users", func(t *testing.T) {
		tok := g.login("admin", adminPassword).AccessToken
		if r, b := g.do("GET", "/ocr/x", tok, ""); r.StatusCode != 200 {
			t.Fatalf("call: %d %s", r.StatusCode, b)
		}
		today := time.Now().UTC().Format(time.DateOnly)
		var rep struct {
			Total struct{ Requests int64 }
		}
		if !eventually(5*time.Second, func() bool {
			r := cli("", "usage", "--from", today, "--to", today, "--format", "json")
			return r.err == nil && json.Unmarshal([]byte(r.stdout), &rep) == nil && rep.Total.Requests >= 1
		}) {
			r := cli("", "usage", "--from", today, "--to", today, "--format", "json")
			t.Fatalf("usage --from %s --to %s does not count today's call: %v\n%s", today, today, r.err, r.shown())
		}
		r := cli("", "usage", "--group-by", "user")
		if r.err != nil || !strings.Contains(r.stdout, "name") || !strings.Contains(r.stdout, "admin") {
			t.Fatalf("usage table without names:\n%s", r.shown())
		}
	})
	t.Run("budget list shows the overrides", func(t *testing.T) {
		if r := cli("", "budget", "set", "--user", "carl", "--amount", "2.50", "--period", "day"); r.err != nil {
			t.Fatalf("budget set: %v\n%s", r.err, r.shown())
		}
		r := cli("", "budget", "list")
		if r.err != nil || !strings.Contains(r.stdout, "carl") || !strings.Contains(r.stdout, "2.500000") || !strings.Contains(r.stdout, "day") {
			t.Fatalf("budget list:\n%s", r.shown())
		}
	})
	t.Run("user delete removes the user and refuses its tokens and keys", func(t *testing.T) {
		g.mustCLI("user", "add", "dora", "--password", "dora-password")
		tok := g.login("dora", "dora-password").AccessToken
		key := strings.TrimSpace(g.mustCLI("key", "create", "--user", "dora"))
		for _, cred := range []string{tok, key} {
			if r, b := g.do("GET", "/v1/me", cred, ""); r.StatusCode != 200 {
				t.Fatalf("before delete: %d %s", r.StatusCode, b)
			}
		}
		if r := cli("", "user", "delete", "dora"); r.err != nil || !strings.Contains(r.stdout, "deleted user dora") {
			t.Fatalf("user delete: %v\n%s", r.err, r.shown())
		}
		for _, cred := range []string{tok, key} {
			if !eventually(3*time.Second, func() bool { r, _ := g.do("GET", "/v1/me", cred, ""); return r.StatusCode == 401 }) {
				t.Fatal("a credential of the deleted user still works after 3 s")
			}
		}
		if code := loginStatus(g, "dora", "dora-password"); code != 401 {
			t.Fatalf("login of the deleted user: %d", code)
		}
		if out := g.mustCLI("user", "list"); strings.Contains(out, "dora") {
			t.Fatalf("user list after delete:\n%s", out)
		}
	})
}

// TestConfigCheck validates a file without starting and prints the
// effective config, and the demo's.
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(`store: postgres://tollgate:s3cret@db/tollgate
routes:
  - name: chat
    path: /v1/
    upstreams: [http://127.0.0.1:8000]
    upstream_headers: {Authorization: "Bearer sk-live-123"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(nil, "", "config", "check", "--config", good)
	if r.err != nil || !strings.Contains(r.stderr, "is valid") {
		t.Fatalf("config check: %v\n%s", r.err, r.shown())
	}
	for _, want := range []string{"drain_timeout: 30s", "max_body: 10MiB", "strip_prefix: false", "tollgate:***@db"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("effective config lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "s3cret") || strings.Contains(r.stdout, "sk-live-123") {
		t.Errorf("effective config shows a secret:\n%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "tollgate-data")); err == nil {
		t.Error("config check created a store")
	}

	r = runCLI(nil, "", "config", "check", "--demo")
	if r.err != nil || !strings.Contains(r.stdout, "name: demo-openai") || !strings.Contains(r.stdout, "name: demo-colorize") {
		t.Fatalf("config check --demo: %v\n%s", r.err, r.shown())
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("server:\n  access_log: true\n drain_timeout: 5s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runCLI(nil, "", "config", "check", "--config", bad)
	if r.err == nil || !strings.Contains(r.shown(), "line 3:") || r.stdout != "" {
		t.Fatalf("config check of a mis-indented key: %v\n%s", r.err, r.shown())
	}
}

// TestNewPostgresStoreIsAnnounced: a command pointed at a PostgreSQL
// schema with no tollgate tables says it created the store there, and
// only the first time.
func TestNewPostgresStoreIsAnnounced(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tollgate.yaml")
	if err := os.WriteFile(cfg, []byte(clusterYAML(t, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(nil, "", "user", "add", "bob", "--password", "bob-password", "--config", cfg)
	if r.err != nil || !strings.Contains(r.stderr, "no store in PostgreSQL schema") || !strings.Contains(r.stderr, "created a new, empty one") {
		t.Fatalf("first command on a new schema: %v\nstderr: %s", r.err, r.stderr)
	}
	if r := runCLI(nil, "", "user", "list", "--config", cfg); r.err != nil || strings.Contains(r.stderr, "no store") || !strings.Contains(r.stdout, "bob") {
		t.Fatalf("second command: %v\nstdout %s\nstderr %s", r.err, r.stdout, r.stderr)
	}
}

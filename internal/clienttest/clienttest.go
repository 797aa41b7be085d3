// Package clienttest finds the official clients that tests drive tollgate
// with: Node.js with the npm packages pinned in the repository's clients/
// folder (installed there by `npm ci`), and Debian's Chromium for browser
// tests. A test that needs one calls Node or Chromium: without the tool it
// skips with a message saying how to install it, and under CI=true, where
// every check must run, it fails instead.
package clienttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Clients is what Node found: the node binary and the clients/ folder whose
// node_modules holds the pinned packages.
type Clients struct {
	Node string // path of the node binary
	Dir  string // the repository's clients/ folder
}

// Node returns the Node.js clients, or skips tb (fails it under CI=true)
// when node or the installed packages are missing.
func Node(tb testing.TB) Clients {
	tb.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		missing(tb, "node is not installed (apt-get install nodejs)")
	}
	dir, err := clientsDir()
	if err != nil {
		missing(tb, err.Error())
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil {
		missing(tb, fmt.Sprintf("the pinned npm clients are not installed: run `npm ci` in %s", dir))
	}
	return Clients{Node: node, Dir: dir}
}

// Chromium returns the path of Debian's chromium, or skips tb (fails it
// under CI=true) when it is not installed.
func Chromium(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	missing(tb, "chromium is not installed (apt-get install -y chromium)")
	return ""
}

// Run runs the script clients/checks/NAME with args and returns what it
// printed on stdout. A script that fails, or runs past timeout, fails tb
// with its output.
func (c Clients) Run(tb testing.TB, timeout time.Duration, name string, args ...string) []byte {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Node, append([]string{filepath.Join(c.Dir, "checks", name)}, args...)...)
	cmd.Dir = c.Dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("node %s: %v\nstdout:\n%s\nstderr:\n%s", name, err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes()
}

// missing skips tb with why, or fails it under CI=true.
func missing(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf("CI=true and %s", why)
	}
	tb.Skipf("skipping: %s", why)
}

// clientsDir finds clients/ beside the module's go.mod, walking up from
// the test's working directory (its package folder).
func clientsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			c := filepath.Join(dir, "clients")
			if _, err := os.Stat(filepath.Join(c, "package.json")); err != nil {
				return "", fmt.Errorf("no clients/package.json beside %s", filepath.Join(dir, "go.mod"))
			}
			return c, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

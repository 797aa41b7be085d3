package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// envServeChild makes the test binary run `tollgate serve` as a child
// process, so a test can SIGKILL a real gateway.
const envServeChild = "TOLLGATE_TEST_SERVE_CHILD"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(envServeChild); cfg != "" {
		env := Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
		if err := Run(context.Background(), []string{"serve", "--config", cfg}, env); err != nil {
			fmt.Fprintln(os.Stderr, "child serve:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startChild runs serve with cfgPath in a child process and waits until it
// answers /readyz at addr.
func startChild(t *testing.T, cfgPath, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envServeChild+"="+cfgPath, "TOLLGATE_ADMIN_PASSWORD="+adminPassword)
	cmd.Stderr = &syncBuffer{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if !eventually(30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}) {
		t.Fatalf("child gateway not ready: %s", cmd.Stderr)
	}
	return cmd
}

// childGateway writes a config of yaml, with a free listen address and a
// data dir of its own, for a gateway run in a child process (startChild
// with g.Config and addr).
func childGateway(t *testing.T, yaml string) (g *testGateway, addr string) {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	cfgPath := filepath.Join(dir, "tollgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("listen: %s\ndata_dir: %s\n%s", addr, filepath.Join(dir, "data"), yaml)), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testGateway{URL: "http://" + addr, Config: cfgPath, t: t, env: map[string]string{}}, addr
}

// TestSIGKILLUnderLoad kills a real gateway process with SIGKILL while 16
// clients keep calling, restarts it on the same store, and finds a usage
// record for every request the upstream received, and at most the
// in-flight ones more (invariant 5).
func TestSIGKILLUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("testing.Short: skipping the SIGKILL test")
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("X-Request-ID")] = true
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer up.Close()

	g, addr := childGateway(t, `server: {access_log: false}
protection: {ip_rate_limit: 100000/s, login_rate_limit: 1000/m}
routes:
  - name: ocr
    path: /ocr/
    upstreams: [`+up.URL+`]
    price: {per_request: "0.001"}
`)
	child := startChild(t, g.Config, addr)
	tok := g.login("admin", adminPassword).AccessToken
	var served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", g.URL+"/ocr/page", strings.NewReader("x"))
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					served.Add(1)
				}
			}
		})
	}
	if !eventually(20*time.Second, func() bool { return served.Load() >= 300 }) {
		t.Fatalf("only %d calls served before the kill", served.Load())
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	close(stop)
	wg.Wait()

	startChild(t, g.Config, addr) // reconciles records left open
	out := g.mustCLI("export")
	ids := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			ID   string
			Data struct{ Outcome string }
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		ids[ev.ID] = ev.Data.Outcome
	}
	mu.Lock()
	defer mu.Unlock()
	missing, unknown := 0, 0
	for id := range seen {
		if _, ok := ids[id]; !ok {
			missing++
		}
	}
	for _, outcome := range ids {
		if outcome == "unknown" {
			unknown++
		}
	}
	t.Logf("upstream saw %d requests; ledger has %d records, %d reconciled as unknown", len(seen), len(ids), unknown)
	if missing > 0 {
		t.Fatalf("%d of %d requests the upstream served have no usage record", missing, len(seen))
	}
	if extra := len(ids) - len(seen); extra > 16 {
		t.Fatalf("%d records more than upstream requests; at most the 16 in flight may be", extra)
	}
}

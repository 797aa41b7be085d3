package meter_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/meter"
	"github.com/tollgate/tollgate/internal/proxy"
	"github.com/tollgate/tollgate/internal/sqlite"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// TestHelperProcess is the gateway child of TestSIGKILLUnderLoad: SQLite,
// the meter and the data plane, serving until it is killed. It does
// nothing in a normal test run.
func TestHelperProcess(t *testing.T) {
	dbPath := os.Getenv("TOLLGATE_HELPER_DB")
	if dbPath == "" {
		return
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := gatewayConfig(t, os.Getenv("TOLLGATE_HELPER_UPSTREAM"))
	l := db.Ledger()
	m, err := meter.New(cfg, meter.Options{Ledger: l, Budgets: l, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(cfg, proxy.Options{Auth: bearerAuth{}, Admissions: []tollgate.Admission{m}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addrFile := os.Getenv("TOLLGATE_HELPER_ADDR")
	if err := os.WriteFile(addrFile+".tmp", []byte(ln.Addr().String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(addrFile+".tmp", addrFile); err != nil {
		t.Fatal(err)
	}
	_ = http.Serve(ln, p) // until SIGKILL
}

func TestSIGKILLUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("testing.Short: skipping the SIGKILL test, which starts and kills a gateway process")
	}
	up := newChatUpstream(t)
	dir := t.TempDir()
	dbPath, addrFile := filepath.Join(dir, "tollgate.db"), filepath.Join(dir, "addr")
	child := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	child.Env = append(os.Environ(), "TOLLGATE_HELPER_DB="+dbPath, "TOLLGATE_HELPER_UPSTREAM="+up.URL,
		"TOLLGATE_HELPER_ADDR="+addrFile)
	child.Stdout, child.Stderr = os.Stderr, os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	var addr []byte
	for {
		var err error
		if addr, err = os.ReadFile(addrFile); err == nil {
			break
		}
		if child.ProcessState != nil {
			t.Fatal("the gateway process exited before listening")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Load: workers send until the gateway dies; it is killed once the
	// upstream has served 300 requests, with calls in flight.
	const workers = 16
	var sent, stopped atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	dead := make(chan struct{})
	for range workers {
		wg.Go(func() {
			defer stopped.Add(1)
			for {
				req, _ := http.NewRequest(http.MethodPost, "http://"+string(addr)+"/v1/chat/completions",
					strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
				req.Header.Set("Authorization", "Bearer killtest:unlimited")
				sent.Add(1)
				resp, err := client.Do(req)
				if err != nil {
					return // the gateway is gone
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("status %d before the kill", resp.StatusCode)
					return
				}
			}
		})
	}
	go func() {
		for up.hits.Load() < 300 && stopped.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		_ = child.Process.Kill() // SIGKILL
		close(dead)
	}()
	<-dead
	wg.Wait()
	_ = child.Wait()

	// Restart: a new meter on the same database reconciles at start.
	db, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	l := db.Ledger()
	cfg := gatewayConfig(t, up.URL)
	mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l, Logger: slog.New(slog.DiscardHandler)})

	up.mu.Lock()
	ids := append([]string(nil), up.ids...)
	up.mu.Unlock()
	unknown := 0
	for _, id := range ids {
		r, err := l.Record(context.Background(), id)
		if err != nil {
			t.Errorf("the upstream served %s but the ledger has no record: %v", id, err)
			continue
		}
		if !r.Settled {
			t.Errorf("record %s still open after restart", id)
		}
		if r.Outcome == tollgate.ResultUnknown {
			unknown++
		}
	}
	n, _ := total(t, l, tollgate.UsageQuery{})
	if n < int64(len(ids)) || n > int64(len(ids))+workers {
		t.Errorf("%d records for %d served requests; want at least as many, at most %d in-flight more", n, len(ids), workers)
	}
	t.Logf("upstream served %d of %d sent; %d records, %d reconciled as unknown", len(ids), sent.Load(), n, unknown)
}

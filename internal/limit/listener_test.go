package limit_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/edge"
	"github.com/tollgate/tollgate/internal/limit"
)

// hardenedServer serves ok behind limit.Harden and limit.Listener.
func hardenedServer(t *testing.T, yaml string, max int) string {
	t.Helper()
	cfg := MustConfig(t, yaml)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := edge.Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})}
	limit.Harden(&opts, cfg.Server)
	srv := edge.New(opts)
	go func() { _ = srv.Serve(limit.Listener(l, max)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends a GET on c and returns the status line, or "" when no
// answer came within wait.
func roundTrip(c net.Conn, wait time.Duration) string {
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return ""
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return ""
	}
	return strings.TrimSpace(line)
}

func TestListenerCapsConnections(t *testing.T) {
	addr := hardenedServer(t, "", 2)
	a, b := dial(t, addr), dial(t, addr)
	if roundTrip(a, 2*time.Second) == "" || roundTrip(b, 2*time.Second) == "" {
		t.Fatal("the first two connections are not served")
	}
	third := dial(t, addr) // the kernel completes the handshake; the server does not accept
	if got := roundTrip(third, 300*time.Millisecond); got != "" {
		t.Fatalf("a third connection over the cap of 2 was served: %q", got)
	}
	a.Close()
	_ = third.SetDeadline(time.Now().Add(2 * time.Second))
	if line, err := bufio.NewReader(third).ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("after one connection closed, the waiting client got %q, %v; want its 200", line, err)
	}
}

func TestSlowHeadersAreCutOff(t *testing.T) {
	addr := hardenedServer(t, "server: {read_header_timeout: 200ms}", 0)
	c := dial(t, addr)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ") // never finishes
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a client that never finishes its headers keeps the connection open")
	}
}

func TestHugeHeadersAreRefused(t *testing.T) {
	addr := hardenedServer(t, "server: {max_header_bytes: 4096}", 0)
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB of headers over a 4 KiB cap: %d, want 431", resp.StatusCode)
	}
}

// TestSilentCrowdDoesNotStarveClients: silent sockets filling every
// connection slot are closed after server.read_header_timeout, so a
// normal client queued behind them is answered within that time and a
// second, not after the idle timeout.
func TestSilentCrowdDoesNotStarveClients(t *testing.T) {
	const crowd, head = 2000, 3 * time.Second
	addr := hardenedServer(t, "server: {read_header_timeout: 3s, idle_timeout: 2m}", crowd)
	start := time.Now()
	for range crowd {
		dial(t, addr)
	}
	c := dial(t, addr) // queued behind the crowd, which holds every slot
	if got := roundTrip(c, head+time.Second); !strings.Contains(got, "200") {
		t.Fatalf("with %d silent sockets open, a client got %q within %v; want its 200", crowd, got, head+time.Second)
	}
	t.Logf("answered %v after the crowd began", time.Since(start).Round(time.Millisecond))
}

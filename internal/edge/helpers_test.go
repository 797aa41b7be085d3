package edge_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/edge"
)

// servers serve one handler twice: through edge, and through a plain
// net/http server, so a test can compare what a client gets from each.
type servers struct {
	edge, std string
	srv       *edge.Server
}

func setup(t *testing.T, h http.Handler, opts ...func(*edge.Options)) servers {
	t.Helper()
	o := edge.Options{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	for _, f := range opts {
		f(&o)
	}
	srv := edge.New(o)
	ln := mustListen(t)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	std := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0), MaxHeaderBytes: o.MaxHeaderBytes}
	sln := mustListen(t)
	go func() { _ = std.Serve(sln) }()
	t.Cleanup(func() { _ = std.Close() })
	return servers{edge: ln.Addr().String(), std: sln.Addr().String(), srv: srv}
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// client is one raw connection.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

func (cl *client) send(raw string) {
	cl.t.Helper()
	if _, err := io.WriteString(cl.c, raw); err != nil {
		cl.t.Fatal(err)
	}
}

// read reads one response (to a request of method) with its body.
func (cl *client) read(method string) (*http.Response, string) {
	cl.t.Helper()
	res, err := http.ReadResponse(cl.br, &http.Request{Method: method})
	if err != nil {
		cl.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		cl.t.Fatalf("read body: %v", err)
	}
	return res, string(b)
}

// closed reports whether the server closed the connection: the next read
// ends without a byte.
func (cl *client) closed() bool {
	_ = cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := cl.br.ReadByte()
	return err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// summary is what a client can tell of a response, Date aside.
func summary(res *http.Response, body string) string {
	h := res.Header.Clone()
	h.Del("Date")
	var b strings.Builder
	fmt.Fprintf(&b, "%d cl=%d te=%v close=%v\n", res.StatusCode, res.ContentLength, res.TransferEncoding, res.Close)
	_ = h.WriteSubset(&b, nil)
	fmt.Fprintf(&b, "body=%q trailer=%v", body, res.Trailer)
	return b.String()
}

// writerKind is a response header naming the ResponseWriter, so a test
// can tell which server side answered.
func writerKind(w http.ResponseWriter) string { return fmt.Sprintf("%T", w) }

const fastWriter = "*edge.response"

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Which side of edge must have answered a request.
const (
	servedFast      = true
	servedByNetHTTP = false
)

// both sends raw to edge and to plain net/http and fails the test when
// the answers differ, or when edge's answer did not come from the side
// fast names (the handler reports its ResponseWriter in X-Writer).
func (s servers) both(t *testing.T, raw, method string, fast bool) {
	t.Helper()
	got := map[string]string{}
	for server, addr := range map[string]string{"edge": s.edge, "net/http": s.std} {
		cl := dial(t, addr)
		cl.send(raw)
		res, body := cl.read(method)
		if server == "edge" && (res.Header.Get("X-Writer") == fastWriter) != fast {
			t.Errorf("served by %s; want the fast path: %v", res.Header.Get("X-Writer"), fast)
		}
		res.Header.Del("X-Writer")
		got[server] = summary(res, body)
	}
	if got["edge"] != got["net/http"] {
		t.Errorf("edge answered\n%s\nnet/http answered\n%s", got["edge"], got["net/http"])
	}
}

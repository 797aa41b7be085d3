package proxy_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// connState is what became of a connection that carried a misbehaving
// answer.
type connState int

const (
	connOpen   connState = iota
	connClosed           // the gateway closed it
	connReused           // the gateway sent another request on it
)

// emulator is the raw-socket upstream of one row. Users' requests
// (/echo/...) are answered with their method, path and the identity
// headers the upstream saw; the trigger is answered by the row. Like
// Python's http.server it ignores GET bodies, and like most servers it
// flushes its answers when no pipelined request is waiting.
type emulator struct {
	row  *framingRow
	addr string

	mu      sync.Mutex
	fired   int // misbehaving answers written
	armed   int // delayed unsolicited answers not yet written or given up
	hidden  int // hidden requests the upstream ran
	conns   map[*emuConn]connState
	changed chan struct{} // closed and replaced on every change
	quiet   chan struct{} // closed when the current round of calls ended
}

type emuConn struct {
	c     net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	quiet chan struct{} // of the round a delayed answer is armed in
}

// newEmulator starts the upstream of row, behind TLS when serverTLS is
// set.
func newEmulator(t *testing.T, row *framingRow, serverTLS *tls.Config) *emulator {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if serverTLS != nil {
		ln = tls.NewListener(ln, serverTLS)
	}
	e := &emulator{row: row, addr: ln.Addr().String(), conns: map[*emuConn]connState{},
		changed: make(chan struct{}), quiet: make(chan struct{})}
	// At the end the listener closes first, then, once no connection can
	// be accepted any more, every open one, so no server goroutine is left
	// reading a connection accepted after the others were closed.
	var wg sync.WaitGroup
	var open sync.Map
	accepting := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-accepting
		open.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		wg.Wait()
	})
	go func() {
		defer close(accepting)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			open.Store(c, true)
			wg.Go(func() {
				defer open.Delete(c)
				defer c.Close()
				e.serve(&emuConn{c: c, br: bufio.NewReader(c), bw: bufio.NewWriter(c)})
			})
		}
	}()
	return e
}

// change runs f under the lock and wakes waiters.
func (e *emulator) change(f func()) {
	e.mu.Lock()
	f()
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

func (e *emulator) fire() { e.change(func() { e.fired++ }) }

func (e *emulator) poisoned(ec *emuConn) { e.change(func() { e.conns[ec] = connOpen }) }

func (e *emulator) ended(ec *emuConn) {
	e.change(func() {
		if s, ok := e.conns[ec]; ok && s == connOpen {
			e.conns[ec] = connClosed
		}
	})
}

func (e *emulator) reused(ec *emuConn) {
	e.change(func() {
		if _, ok := e.conns[ec]; ok {
			e.conns[ec] = connReused
		}
	})
}

// wait blocks until cond (called under the lock) holds.
func (e *emulator) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	limit := time.After(30 * time.Second)
	for {
		e.mu.Lock()
		ok, ch := cond(), e.changed
		e.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-limit:
			t.Fatalf("gave up waiting: %s", what)
		}
	}
}

func (e *emulator) serve(ec *emuConn) {
	for {
		req, err := http.ReadRequest(ec.br)
		if err != nil {
			e.ended(ec)
			return
		}
		e.reused(ec)
		if req.Method != http.MethodGet {
			_, _ = io.Copy(io.Discard, req.Body)
		}
		keep := true
		switch {
		case req.URL.Path == "/echo/hidden":
			// The upstream misread a body as this request: its answer
			// is one the gateway did not ask for.
			echo(ec.bw, req)
			e.change(func() { e.hidden++ })
			e.poisoned(ec)
		case strings.HasPrefix(req.URL.Path, "/echo/") || e.row.answer == nil:
			if e.row.delay > 0 && !strings.HasPrefix(req.URL.Path, "/echo/") {
				// Armed before the answer leaves, in the round it answers.
				e.change(func() { e.armed++; ec.quiet = e.quiet })
			}
			echo(ec.bw, req)
		default:
			keep = e.row.answer(e, ec, req)
		}
		if ec.br.Buffered() == 0 || !keep {
			if ec.bw.Flush() != nil || !keep {
				e.ended(ec)
				return
			}
		}
		if e.row.delay > 0 && !strings.HasPrefix(req.URL.Path, "/echo/") {
			if !e.unsolicitedWhenIdle(ec) {
				return
			}
		}
	}
}

// unsolicitedWhenIdle writes poison once the gateway has gone quiet (the
// round of calls ended) and the connection has then been idle for the
// row's delay. When the gateway sends a request first it gives up: no
// client could tell the poison from that request's answer. Waiting for the
// quiet lets a client that looks at its idle connections from a goroutine
// of its own (net/http) do so before the next round takes them.
func (e *emulator) unsolicitedWhenIdle(ec *emuConn) bool {
	quiet := ec.quiet
	stop := make(chan struct{})
	var timer sync.WaitGroup
	timer.Go(func() {
		select {
		case <-quiet:
			_ = ec.c.SetReadDeadline(time.Now().Add(e.row.delay))
		case <-stop:
		}
	})
	_, err := ec.br.Peek(1)
	close(stop)
	timer.Wait()
	_ = ec.c.SetReadDeadline(time.Time{})
	idle := errors.Is(err, os.ErrDeadlineExceeded)
	if idle {
		ec.bw.WriteString(poison)
		err = ec.bw.Flush()
		e.poisoned(ec)
		e.fire()
	}
	e.change(func() { e.armed-- })
	if err != nil {
		e.ended(ec)
		return false
	}
	return true
}

// hush tells the delayed answers that the gateway is quiet, and starts a
// new round.
func (e *emulator) hush() {
	e.change(func() {
		close(e.quiet)
		e.quiet = make(chan struct{})
	})
}

// echo answers with the request's method and path and every identity
// header the upstream received, whatever its spelling.
func echo(w *bufio.Writer, req *http.Request) {
	var ids []string
	for k, vv := range req.Header {
		if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-User-Id") {
			ids = append(ids, vv...)
		}
	}
	body := fmt.Sprintf("%s %s user=%s", req.Method, req.URL.Path, strings.Join(ids, ","))
	fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

package edge_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/edge"
)

// The timeout these tests give the server for a request head.
const headTimeout = 3 * time.Second

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
}

func withTimeouts(head, idle time.Duration) func(*edge.Options) {
	return func(o *edge.Options) { o.ReadHeaderTimeout, o.IdleTimeout = head, idle }
}

// watchClose reads c until the server ends it and reports when it did on
// the returned channel; bytes the server sends first (an error answer)
// are dropped.
func watchClose(t *testing.T, c net.Conn) <-chan time.Time {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	done := make(chan time.Time, 1)
	go func() {
		_, err := io.Copy(io.Discard, c)
		if isTimeout(err) {
			return // never closed: the test's own wait fails it
		}
		done <- time.Now()
	}()
	return done
}

// trickle writes s to c one piece every gap until s is sent, c fails or
// stop is closed.
func trickle(c net.Conn, pieces []string, gap time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for _, p := range pieces {
		if _, err := io.WriteString(c, p); err != nil {
			return
		}
		select {
		case <-tick.C:
		case <-stop:
			return
		}
	}
}

// assertClosedWithin fails unless closed reports a close between start
// plus min and start plus max.
func assertClosedWithin(t *testing.T, closed <-chan time.Time, start time.Time, min, max time.Duration) {
	t.Helper()
	select {
	case at := <-closed:
		if took := at.Sub(start); took < min {
			t.Fatalf("closed after %v, before its %v", took.Round(time.Millisecond), min)
		} else {
			t.Logf("closed after %v", took.Round(time.Millisecond))
		}
	case <-time.After(time.Until(start.Add(max))):
		t.Fatalf("still open %v after it began", max)
	}
}

// TestSilentConnectionClosedAfterReadHeaderTimeout: a connection that
// sends nothing is closed once the head timeout has passed, though the
// idle timeout is far longer.
func TestSilentConnectionClosedAfterReadHeaderTimeout(t *testing.T) {
	t.Parallel()
	s := setup(t, okHandler(), withTimeouts(headTimeout, time.Minute))
	start := time.Now() // before the dial: the server's clock starts at its accept
	c, err := net.Dial("tcp", s.edge)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	assertClosedWithin(t, watchClose(t, c), start, headTimeout, headTimeout+time.Second)
}

// TestSlowFirstHeadClosed: a first head sent a byte every 500 ms, so
// each byte comes well within any per-read timeout, is cut off at the
// head timeout counted from the accept.
func TestSlowFirstHeadClosed(t *testing.T) {
	t.Parallel()
	s := setup(t, okHandler(), withTimeouts(headTimeout, time.Minute))
	start := time.Now()
	c, err := net.Dial("tcp", s.edge)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	defer close(stop)
	closed := watchClose(t, c)
	go trickle(c, strings.Split("GET / HTTP/1.1\r\nHost: a\r\nX-Slow: "+strings.Repeat("a", 100), ""), 500*time.Millisecond, stop)
	assertClosedWithin(t, closed, start, headTimeout, headTimeout+time.Second)
}

// TestSlowOversizedHeadClosed: a head too large for the fast path's
// buffer goes on to net/http, which must not start the head's time again:
// the whole head is still due at the head timeout from the accept.
func TestSlowOversizedHeadClosed(t *testing.T) {
	t.Parallel()
	s := setup(t, okHandler(), withTimeouts(headTimeout, time.Minute))
	start := time.Now()
	c, err := net.Dial("tcp", s.edge)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	defer close(stop)
	closed := watchClose(t, c)
	// 1 KiB every 600 ms: the 4 KiB buffer is full, and the head handed
	// to net/http, after 1.8 s; net/http's own timeout would run to 4.8 s.
	pieces := []string{"GET / HTTP/1.1\r\nHost: a\r\n"}
	for range 40 {
		pieces = append(pieces, "X-Pad: "+strings.Repeat("p", 1015)+"\r\n")
	}
	go trickle(c, pieces, 600*time.Millisecond, stop)
	assertClosedWithin(t, closed, start, headTimeout, headTimeout+time.Second)
}

// TestKeepAliveTimeouts: after an answer the connection waits the idle
// timeout for the next request, not the head timeout; once the next
// request's first byte is in, the rest of its head is due within the
// head timeout.
func TestKeepAliveTimeouts(t *testing.T) {
	t.Parallel()
	const head = time.Second
	s := setup(t, okHandler(), withTimeouts(head, time.Minute))
	served := func(t *testing.T) *client {
		cl := dial(t, s.edge)
		cl.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
		if res, _ := cl.read("GET"); res.StatusCode != 200 {
			t.Fatalf("first request: %d", res.StatusCode)
		}
		return cl
	}
	t.Run("idle outlasts the head timeout", func(t *testing.T) {
		t.Parallel()
		cl := served(t)
		<-time.After(head + time.Second) // the behaviour under test: time idle
		cl.send("GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
		if res, _ := cl.read("GET"); res.StatusCode != 200 {
			t.Fatalf("request after %v idle: %d", head+time.Second, res.StatusCode)
		}
	})
	t.Run("head after the first byte", func(t *testing.T) {
		t.Parallel()
		cl := served(t)
		start := time.Now()
		cl.send("G")
		assertClosedWithin(t, watchClose(t, cl.c), start, head, head+time.Second)
	})
	t.Run("slow head after the first byte", func(t *testing.T) {
		t.Parallel()
		cl := served(t)
		start := time.Now()
		stop := make(chan struct{})
		defer close(stop)
		closed := watchClose(t, cl.c)
		go trickle(cl.c, strings.Split("GET /2 HTTP/1.1\r\nHost: a\r\nX-Slow: "+strings.Repeat("a", 100), ""), 200*time.Millisecond, stop)
		assertClosedWithin(t, closed, start, head, head+time.Second)
	})
	t.Run("net/http after a handed-off request", func(t *testing.T) {
		t.Parallel()
		cl := dial(t, s.edge)
		// A chunked upload is served by net/http, which then owns the
		// connection: its timeouts must be the same.
		cl.send("POST /1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
		if res, _ := cl.read("POST"); res.StatusCode != 200 {
			t.Fatalf("chunked request: %d", res.StatusCode)
		}
		<-time.After(head + time.Second) // idle longer than the head timeout
		cl.send("GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
		if res, _ := cl.read("GET"); res.StatusCode != 200 {
			t.Fatalf("request after %v idle: %d", head+time.Second, res.StatusCode)
		}
		start := time.Now()
		cl.send("GET /3 HTTP/1.1\r\n")
		assertClosedWithin(t, watchClose(t, cl.c), start, head, head+time.Second)
	})
	t.Run("idle timeout", func(t *testing.T) {
		t.Parallel()
		const idle = 500 * time.Millisecond
		s := setup(t, okHandler(), withTimeouts(10*time.Second, idle))
		cl := dial(t, s.edge)
		cl.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
		if res, _ := cl.read("GET"); res.StatusCode != 200 {
			t.Fatalf("first request: %d", res.StatusCode)
		}
		start := time.Now()
		assertClosedWithin(t, watchClose(t, cl.c), start, 0, idle+time.Second)
	})
}

package edge_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/edge"
)

func TestPipelinedRequestsAnswerInOrder(t *testing.T) {
	s := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s:%s", r.URL.Path, b)
	}))
	cl := dial(t, s.edge)
	cl.send("POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nonePOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\ntwoGET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, want := range []string{"/1:one", "/2:two", "/3:"} {
		if _, body := cl.read("GET"); body != want {
			t.Fatalf("got %q, want %q", body, want)
		}
	}
}

// TestUnreadBodies: a body the handler left unread is dropped and the
// connection serves the next request; one over 256 KiB closes it.
func TestUnreadBodies(t *testing.T) {
	s := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	t.Run("small is discarded", func(t *testing.T) {
		cl := dial(t, s.edge)
		cl.send("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("z", 1000))
		if res, body := cl.read("POST"); body != "/a" || res.Close {
			t.Fatalf("first answer %q close=%v", body, res.Close)
		}
		cl.send("GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
		if _, body := cl.read("GET"); body != "/b" {
			t.Fatalf("second answer %q", body)
		}
	})
	t.Run("large closes", func(t *testing.T) {
		cl := dial(t, s.edge)
		cl.send("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 400000\r\n\r\n" + strings.Repeat("z", 300))
		res, body := cl.read("POST")
		if body != "/a" || !res.Close {
			t.Fatalf("answer %q close=%v, want the connection closed", body, res.Close)
		}
		if !cl.closed() {
			t.Fatal("connection still open")
		}
	})
}

// TestStreamReachesClientEventByEvent: a flushed event is on the wire
// before the handler goes on.
func TestStreamReachesClientEventByEvent(t *testing.T) {
	next := make(chan struct{})
	s := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	}))
	res, err := http.Get("http://" + s.edge + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q, %v", i, line, err)
		}
		_, _ = br.ReadString('\n')
		next <- struct{}{} // the handler waits until the event was read
	}
}

// TestClientGoneCancelsRequest: the request context ends when the client
// hangs up, in a long request and in a stream.
func TestClientGoneCancelsRequest(t *testing.T) {
	for _, flush := range []bool{false, true} {
		t.Run(fmt.Sprintf("flushed=%v", flush), func(t *testing.T) {
			cancelled := make(chan error, 1)
			started := make(chan struct{})
			s := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if flush {
					_, _ = io.WriteString(w, "data: 0\n\n")
					w.(http.Flusher).Flush()
				}
				close(started)
				select {
				case <-r.Context().Done():
					cancelled <- r.Context().Err()
				case <-time.After(10 * time.Second):
					cancelled <- errors.New("not cancelled")
				}
			}))
			cl := dial(t, s.edge)
			cl.send("POST /gen HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}")
			<-started
			_ = cl.c.Close()
			if err := <-cancelled; !errors.Is(err, context.Canceled) {
				t.Fatalf("request context: %v", err)
			}
		})
	}
}

// TestFinishedRequestContextEnds: as with net/http, the context ends when
// the handler returns.
func TestFinishedRequestContextEnds(t *testing.T) {
	ctxs := make(chan context.Context, 1)
	s := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ctxs <- r.Context() }))
	cl := dial(t, s.edge)
	cl.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	cl.read("GET")
	if err := (<-ctxs).Err(); err == nil {
		t.Fatal("context still live after the handler returned")
	}
}

func TestInterimResponses(t *testing.T) {
	s := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = io.WriteString(w, "final")
	}))
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "http://"+s.edge+"/", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if len(hints) != 1 || hints[0] != "103 </app.css>; rel=preload" || string(b) != "final" || res.Header.Get("Link") != "" {
		t.Fatalf("hints %v, body %q, final Link %q", hints, b, res.Header.Get("Link"))
	}
}

// TestPanics: a panicking handler ends its connection, not the server;
// http.ErrAbortHandler cuts a started response short.
func TestPanics(t *testing.T) {
	s := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/abort":
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		_, _ = io.WriteString(w, "fine")
	}))
	cl := dial(t, s.edge)
	cl.send("GET /panic HTTP/1.1\r\nHost: a\r\n\r\n")
	if !cl.closed() {
		t.Fatal("connection open after a panic")
	}
	cl = dial(t, s.edge)
	cl.send("GET /abort HTTP/1.1\r\nHost: a\r\n\r\n")
	res, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(res.Body); err == nil || string(b) != "partial" {
		t.Fatalf("aborted body %q, err %v; want it cut short", b, err)
	}
	cl = dial(t, s.edge)
	cl.send("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := cl.read("GET"); body != "fine" {
		t.Fatalf("after panics: %q", body)
	}
}

func TestTimeouts(t *testing.T) {
	s := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), func(o *edge.Options) {
		o.IdleTimeout = 100 * time.Millisecond
		o.ReadHeaderTimeout = 100 * time.Millisecond
	})
	t.Run("idle", func(t *testing.T) {
		cl := dial(t, s.edge)
		cl.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		cl.read("GET")
		if !cl.closed() {
			t.Fatal("idle connection kept open")
		}
	})
	t.Run("slow head", func(t *testing.T) {
		cl := dial(t, s.edge)
		cl.send("GET / HTTP/1.1\r\nHost: a\r\n")
		if !cl.closed() {
			t.Fatal("connection with an unfinished head kept open")
		}
	})
}

// TestShutdown: Shutdown closes idle connections, refuses new ones, and
// lets an active request finish with "Connection: close".
func TestShutdown(t *testing.T) {
	release, inSlow := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(inSlow)
			<-release
		}
		_, _ = io.WriteString(w, "done")
	})
	srv := edge.New(edge.Options{Handler: h})
	ln := mustListen(t)
	served0 := make(chan error, 1)
	go func() { served0 <- srv.Serve(ln) }()
	addr := ln.Addr().String()

	idle := dial(t, addr)
	idle.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	idle.read("GET")
	active := dial(t, addr)
	active.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	select {
	case <-inSlow: // the slow request is in its handler
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request never reached its handler")
	}

	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctxTimeout(t, 10*time.Second)) }()
	if !idle.closed() {
		t.Fatal("idle connection not closed by Shutdown")
	}
	if err := <-served0; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	res, body := active.read("GET")
	if body != "done" || !res.Close {
		t.Fatalf("active request: %q close=%v", body, res.Close)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestBrokenUpstreamStreamIsCutShort: a ReverseProxy whose upstream dies
// in the middle of a chunked body must not end the client's response as
// if it were complete.
func TestBrokenUpstreamStreamIsCutShort(t *testing.T) {
	up := mustListen(t)
	go func() {
		c, err := up.Accept()
		if err != nil {
			return
		}
		br := bufio.NewReader(c)
		_, _ = http.ReadRequest(br)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
		time.Sleep(50 * time.Millisecond)
		_ = c.Close() // no last chunk
	}()
	target, _ := url.Parse("http://" + up.Addr().String())
	s := setup(t, httputil.NewSingleHostReverseProxy(target))
	res, err := http.Get("http://" + s.edge + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil {
		t.Fatalf("read %q to a clean end; want the response cut short", b)
	}
}

// TestWatchAroundTheHandlerReturn: with the watch due at once, the timer
// fires around every handler's return; the connection still serves each
// request after the other.
func TestWatchAroundTheHandlerReturn(t *testing.T) {
	s := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}), func(o *edge.Options) { o.WatchAfter = time.Nanosecond })
	cl := dial(t, s.edge)
	for i := range 3000 {
		cl.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		res, err := http.ReadResponse(cl.br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if b, err := io.ReadAll(res.Body); err != nil || string(b) != "ok" {
			t.Fatalf("request %d: %q, %v", i, b, err)
		}
	}
}

// TestUpgradeIsHijackedThroughNetHTTP: a websocket-style upgrade goes to
// net/http, whose ResponseWriter hijacks the connection for the handler.
func TestUpgradeIsHijackedThroughNetHTTP(t *testing.T) {
	s := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		line, _ := brw.ReadString('\n')
		_, _ = brw.WriteString("echo: " + line)
		_ = brw.Flush()
	}))
	cl := dial(t, s.edge)
	cl.send("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	res, err := http.ReadResponse(cl.br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	cl.send("hello\n")
	if line, err := cl.br.ReadString('\n'); err != nil || line != "echo: hello\n" {
		t.Fatalf("after the upgrade: %q, %v", line, err)
	}
}

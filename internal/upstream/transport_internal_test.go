package upstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// connUpstream is an httptest server that counts the connections it
// accepted.
type connUpstream struct {
	*httptest.Server
	conns atomic.Int64
}

func newConnUpstream(t *testing.T, h http.HandlerFunc) *connUpstream {
	t.Helper()
	u := &connUpstream{}
	u.Server = httptest.NewUnstartedServer(h)
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.conns.Add(1)
		}
	}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

func setupTransport(t *testing.T) *Transport {
	t.Helper()
	tr := New(Config{})
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func mustDo(t *testing.T, tr http.RoundTripper, req *http.Request) (*http.Response, string) {
	t.Helper()
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body of %s: %v", req.URL, err)
	}
	_ = res.Body.Close()
	return res, string(b)
}

func newReq(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestTransportKeepsConnectionsAlive(t *testing.T) {
	up := newConnUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		switch r.URL.Path {
		case "/chunked":
			w.Write([]byte("part one "))
			w.(http.Flusher).Flush()
			w.Write([]byte("part two"))
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Write(append([]byte(r.URL.Path+":"), b...))
		}
	})
	tr := setupTransport(t)
	for i := range 10 {
		_, got := mustDo(t, tr, newReq(t, "GET", up.URL+"/get", nil))
		if got != "/get:" {
			t.Fatalf("GET %d: body %q", i, got)
		}
		_, got = mustDo(t, tr, newReq(t, "POST", up.URL+"/post", strings.NewReader("hello "+strconv.Itoa(i))))
		if want := "/post:hello " + strconv.Itoa(i); got != want {
			t.Fatalf("POST %d: body %q, want %q", i, got, want)
		}
		_, got = mustDo(t, tr, newReq(t, "GET", up.URL+"/chunked", nil))
		if got != "part one part two" {
			t.Fatalf("chunked %d: body %q", i, got)
		}
		res, got := mustDo(t, tr, newReq(t, "HEAD", up.URL+"/head", nil))
		if got != "" || res.Header.Get("X-Method") != "HEAD" {
			t.Fatalf("HEAD %d: body %q, headers %v", i, got, res.Header)
		}
		res, _ = mustDo(t, tr, newReq(t, "DELETE", up.URL+"/empty", nil))
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("204 %d: status %d", i, res.StatusCode)
		}
	}
	if n := up.conns.Load(); n != 1 {
		t.Fatalf("50 sequential requests used %d connections, want 1", n)
	}
}

func TestTransportUpstreamClosedIdleConnection(t *testing.T) {
	up := newConnUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	tr := setupTransport(t)
	for i, method := range []string{"GET", "POST", "GET", "POST"} {
		// The upstream drops every idle connection (its keep-alive
		// timeout); the next request must not fail for it.
		up.CloseClientConnections()
		time.Sleep(10 * time.Millisecond)
		body := "req " + strconv.Itoa(i)
		_, got := mustDo(t, tr, newReq(t, method, up.URL, strings.NewReader(body)))
		if got != body {
			t.Fatalf("%s after the upstream closed its connections: body %q, want %q", method, got, body)
		}
	}
	if n := up.conns.Load(); n != 4 {
		t.Fatalf("upstream accepted %d connections, want 4 (one per closed one)", n)
	}
}

func TestTransportRetriesIdempotentRequestOnDeadConnection(t *testing.T) {
	// A raw upstream: the first connection answers one request, then reads
	// the second and closes without answering, as a server whose
	// keep-alive timeout raced the request does.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := accepted.Add(1)
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for i := 0; ; i++ {
					if _, err := c.Read(buf); err != nil {
						return
					}
					if n == 1 && i == 1 {
						return // dies with the request unanswered
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	tr := setupTransport(t)
	url := "http://" + ln.Addr().String() + "/"
	for i := range 2 {
		if _, got := mustDo(t, tr, newReq(t, "GET", url, nil)); got != "ok" {
			t.Fatalf("GET %d: body %q", i, got)
		}
	}
	if n := accepted.Load(); n != 2 {
		t.Fatalf("accepted %d connections, want 2 (the retry on a new one)", n)
	}
	// A POST is not sent twice: the caller gets the error.
	accepted.Store(0)
	tr.CloseIdleConnections()
	if _, got := mustDo(t, tr, newReq(t, "POST", url, strings.NewReader("x"))); got != "ok" {
		t.Fatalf("first POST: body %q", got)
	}
	if _, err := tr.RoundTrip(newReq(t, "POST", url, strings.NewReader("y"))); !errors.Is(err, errUpstreamClosed) {
		t.Fatalf("POST on a connection that died unanswered: err %v, want errUpstreamClosed", err)
	}
}

func TestTransportAbandonedBodyClosesConnection(t *testing.T) {
	release := make(chan struct{})
	var handlerDone atomic.Int64
	up := newConnUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		defer handlerDone.Add(1)
		if r.URL.Path == "/stream" {
			w.Write([]byte("data: 1\n\n"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.Write([]byte("ok"))
	})
	defer close(release)
	tr := setupTransport(t)
	res, err := tr.RoundTrip(newReq(t, "GET", up.URL+"/stream", nil))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 9)
	if _, err := io.ReadFull(res.Body, buf); err != nil || string(buf) != "data: 1\n\n" {
		t.Fatalf("first event %q, err %v", buf, err)
	}
	res.Body.Close() // the client went away mid-stream
	deadline := time.Now().Add(5 * time.Second)
	for handlerDone.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the upstream handler still runs after its stream was abandoned")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, got := mustDo(t, tr, newReq(t, "GET", up.URL+"/next", nil)); got != "ok" {
		t.Fatalf("next request: body %q", got)
	}
	if n := up.conns.Load(); n != 2 {
		t.Fatalf("upstream accepted %d connections, want 2: an abandoned stream's connection is not reused", n)
	}
}

func TestTransportCancelStopsWaiting(t *testing.T) {
	started := make(chan struct{})
	gone := make(chan struct{})
	up := newConnUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		close(gone)
	})
	tr := setupTransport(t)
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", up.URL, nil)
	errc := make(chan error, 1)
	go func() {
		_, err := tr.RoundTrip(req)
		errc <- err
	}()
	<-started
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RoundTrip still waits after its context was cancelled")
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request was not cancelled")
	}
}

func TestTransportFallbackAndInterimResponses(t *testing.T) {
	up := newConnUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hints" {
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
		}
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		n, _ := io.Copy(io.Discard, r.Body)
		w.Write([]byte(strconv.FormatInt(n, 10)))
	})
	tr := setupTransport(t)
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, fmt.Sprint(code, " ", h.Get("Link")))
		return nil
	}}
	req := newReq(t, "GET", up.URL+"/hints", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	res, got := mustDo(t, tr, req)
	if res.StatusCode != http.StatusOK || got != "0" {
		t.Fatalf("after 103 Early Hints: status %d body %q, want 200 \"0\"", res.StatusCode, got)
	}
	if len(hints) != 1 || hints[0] != "103 </style.css>; rel=preload" {
		t.Fatalf("interim answers seen by the client trace: %q, want the 103 with its Link", hints)
	}
	// Bodies above MaxDirectBody and of unknown length (sent chunked) are
	// streamed on the direct path, and their connection is used again.
	big := bytes.Repeat([]byte("x"), 3*MaxDirectBody)
	before := up.conns.Load()
	for _, body := range []io.Reader{bytes.NewReader(big), io.MultiReader(bytes.NewReader(big))} {
		req := newReq(t, "POST", up.URL+"/big", body)
		if !Direct(req) {
			t.Fatalf("a body of %d bytes does not take the direct path", req.ContentLength)
		}
		if _, got := mustDo(t, tr, req); got != strconv.Itoa(len(big)) {
			t.Fatalf("upstream read %s bytes, want %d", got, len(big))
		}
	}
	if n := up.conns.Load() - before; n != 0 {
		t.Fatalf("two large uploads on a kept-alive connection opened %d new connections, want 0", n)
	}
	// "Connection: close" from the upstream: the connection is not pooled.
	tr.CloseIdleConnections()
	before = up.conns.Load()
	for range 3 {
		if _, got := mustDo(t, tr, newReq(t, "GET", up.URL+"/close", nil)); got != "0" {
			t.Fatalf("body %q", got)
		}
	}
	if n := up.conns.Load() - before; n != 3 {
		t.Fatalf("3 requests answered with Connection: close used %d connections, want 3", n)
	}
}

func TestTransportIdlePool(t *testing.T) {
	block := make(chan struct{})
	var waiting sync.WaitGroup
	up := newConnUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			waiting.Done()
			<-block
		}
		w.Write([]byte("ok"))
	})
	tr := setupTransport(t)
	tr.maxIdle = 2
	now := time.Now()
	var clock sync.Mutex
	tr.now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }

	// Five at once need five connections; only two stay idle after.
	waiting.Add(5)
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() { mustDo(t, tr, newReq(t, "GET", up.URL+"/wait", nil)) })
	}
	waiting.Wait()
	close(block)
	wg.Wait()
	tr.mu.Lock()
	idle := len(tr.idle[strings.TrimPrefix(up.URL, "http://")])
	tr.mu.Unlock()
	if idle != 2 {
		t.Fatalf("%d idle connections after 5 concurrent requests, want maxIdle 2", idle)
	}
	mustDo(t, tr, newReq(t, "GET", up.URL, nil))
	if n := up.conns.Load(); n != 5 {
		t.Fatalf("%d connections, want 5 (the sixth request reuses one)", n)
	}
	// Past the idle timeout a pooled connection is not used again.
	clock.Lock()
	now = now.Add(tr.idleTimeout + time.Second)
	clock.Unlock()
	mustDo(t, tr, newReq(t, "GET", up.URL, nil))
	if n := up.conns.Load(); n != 6 {
		t.Fatalf("%d connections, want 6: an expired idle connection was reused", n)
	}
}

// TestTransportEarlyHintsReachTheClient: through httputil.ReverseProxy, a
// client sees the upstream's 103 Early Hints before the answer.
func TestTransportEarlyHintsReachTheClient(t *testing.T) {
	up := newConnUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.js>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Write([]byte("done"))
	})
	target, _ := url.Parse(up.URL)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }, Transport: setupTransport(t)}
	gw := httptest.NewServer(rp)
	t.Cleanup(gw.Close)
	var codes []int
	req := newReq(t, "GET", gw.URL, nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			if h.Get("Link") != "</app.js>; rel=preload" {
				t.Errorf("103 with Link %q", h.Get("Link"))
			}
			codes = append(codes, code)
			return nil
		},
	}))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "done" || len(codes) != 1 || codes[0] != 103 {
		t.Fatalf("status %d body %q, interim %v; want 200 \"done\" after one 103", res.StatusCode, body, codes)
	}
}

// rawServer answers each request on a connection with answers[path], and
// counts the connections it accepted.
func rawServer(t *testing.T, answers map[string]string) (url string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, answers[req.URL.Path]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String(), conns
}

// TestTransportClosesMisframedConnections: after an answer that leaves
// bytes behind or could be framed two ways, the next request gets its own
// answer on a new connection; heads that could be framed two ways and an
// unasked 101 are errors.
func TestTransportClosesMisframedConnections(t *testing.T) {
	const next = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
	const poison = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nPOISONED"
	cases := []struct {
		name, method, answer string
		fails                bool
	}{
		{"bytes behind the answer", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + poison, false},
		{"204 with a length", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 41\r\n\r\n" + poison, false},
		{"204 chunked", "GET", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n" + poison, false},
		{"body on a HEAD answer", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 41\r\n\r\n" + poison, false},
		{"unasked 101", "GET", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n" + poison, true},
		{"CL and TE", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 46\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + poison, true},
		{"bare LF", "GET", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok" + poison, true},
		{"too many 1xx", "GET", strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", max1xx+1) + poison, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url, conns := rawServer(t, map[string]string{"/bad": c.answer, "/next": next})
			tr := setupTransport(t)
			res, err := tr.RoundTrip(newReq(t, c.method, url+"/bad", nil))
			if c.fails != (err != nil) {
				t.Fatalf("err %v, want an error: %v", err, c.fails)
			}
			if err == nil {
				_, _ = io.ReadAll(res.Body)
				res.Body.Close()
			}
			if _, got := mustDo(t, tr, newReq(t, "GET", url+"/next", nil)); got != "next" {
				t.Fatalf("the next request got %q", got)
			}
			if n := conns.Load(); n != 2 {
				t.Fatalf("%d connections, want 2: the first was used again", n)
			}
		})
	}
}

// TestTransportOptions: Do bounds the exchange by Options.Deadline and
// hands interim answers to Options.Interim.
func TestTransportOptions(t *testing.T) {
	url, _ := rawServer(t, map[string]string{
		"/hints": "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/slow":  "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst",
	})
	tr := setupTransport(t)
	var got []string
	res, err := tr.Do(newReq(t, "GET", url+"/hints", nil), Options{Interim: func(code int, h http.Header) {
		got = append(got, fmt.Sprint(code, " ", h.Get("Link")))
	}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if len(got) != 1 || got[0] != "103 </a.css>; rel=preload" {
		t.Fatalf("interim answers %q", got)
	}
	res, err = tr.Do(newReq(t, "GET", url+"/slow", nil), Options{Deadline: time.Now().Add(100 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if b, err := io.ReadAll(res.Body); !errors.Is(err, os.ErrDeadlineExceeded) || string(b) != "first" {
		t.Fatalf("a body that stops: read %q, %v; want the deadline", b, err)
	}
}

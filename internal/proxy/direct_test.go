package proxy_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/proxy"
)

// rawUpstream records each request as it arrived and answers with the raw
// response its path names, so both gateways get the same bytes back.
type rawUpstream struct {
	addr string
	mu   sync.Mutex
	got  []*http.Request
	body []string
}

// rawResponses are the upstream's answers by path.
func rawResponses() map[string]string {
	return map[string]string{
		"/hop":      "HTTP/1.1 200 OK\r\nConnection: X-Drop, keep-alive\r\nX-Drop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-Keep: 2\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
		"/chunked":  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n",
		"/sse":      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nContent-Length: 18\r\n\r\ndata: 1\n\ndata: 2\n\n",
		"/hints":    "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/error":    "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\nContent-Length: 4\r\n\r\nbusy",
		"/empty":    "HTTP/1.1 204 No Content\r\nX-Empty: yes\r\n\r\n",
		"/multi":    "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
		"/gpu":      "HTTP/1.1 200 OK\r\nX-Gpu-Seconds: 1.5\r\nContent-Length: 3\r\n\r\ngpu",
		"/untilend": "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\nstreamed until close",
	}
}

func newRawUpstream(t *testing.T) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	u := &rawUpstream{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go u.serve(c)
		}
	}()
	return u
}

func (u *rawUpstream) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	answers := rawResponses()
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		b, _ := io.ReadAll(req.Body)
		u.mu.Lock()
		u.got = append(u.got, req)
		u.body = append(u.body, string(b))
		u.mu.Unlock()
		path := req.URL.Path[strings.LastIndexByte(req.URL.Path, '/'):]
		raw, ok := answers[path]
		if !ok {
			raw = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		}
		if req.Method == http.MethodHead {
			raw = raw[:strings.Index(raw, "\r\n\r\n")+4]
		}
		if _, err := io.WriteString(c, raw); err != nil || strings.Contains(raw, "Connection: close") {
			return
		}
	}
}

// lastRequest describes the last request the upstream received, the
// generated request id aside.
func (u *rawUpstream) lastRequest(t *testing.T, gatewayHost string) string {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.got) == 0 {
		t.Fatal("upstream received nothing")
	}
	r := u.got[len(u.got)-1]
	h := r.Header.Clone()
	if h.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id upstream")
	}
	h.Del("X-Request-Id")
	if fh := h.Get("X-Forwarded-Host"); fh != gatewayHost {
		t.Errorf("X-Forwarded-Host %q, want the gateway's %q", fh, gatewayHost)
	}
	h.Del("X-Forwarded-Host")
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s host=%s cl=%d body=%q\n", r.Method, r.RequestURI, r.Host, r.ContentLength, u.body[len(u.body)-1])
	_ = h.Write(&b)
	return b.String()
}

// viaTransport is a RoundTripper that is not the built-in one, so the
// gateway using it forwards every request through ReverseProxy.
type viaTransport struct{ http.RoundTripper }

// TestDirectMatchesReverseProxy: the direct exchange sends the upstream
// the request ReverseProxy would send, and gives the client the response
// ReverseProxy would give, header for header.
func TestDirectMatchesReverseProxy(t *testing.T) {
	up := newRawUpstream(t)
	yaml := fmt.Sprintf(`
headers:
  strip_cookies: [tg_session]
routes:
  - name: plain
    path: /v1/
    type: http
    upstreams: [http://%[1]s]
    scopes: [infer:text]
    gpu_seconds_header: X-Gpu-Seconds
  - name: based
    path: /based/
    type: http
    strip_prefix: true
    upstreams: ["http://%[1]s/base/?k=v"]
    upstream_headers: {X-Api-Key: secret, User-Agent: tollgate-test}
  - name: joined
    path: /joined/
    type: http
    upstreams: ["http://%[1]s/root"]
    public: true
`, up.addr)
	direct := setup(t, yaml, proxy.Options{})
	viaRP := setup(t, yaml, proxy.Options{Transport: viaTransport{&http.Transport{DisableCompression: true}}})

	type request struct {
		method, path, body string
		hdr                []string
	}
	cases := map[string]request{
		"hop-by-hop both ways": {"GET", "/v1/hop", "", []string{"Connection", "X-Secret, keep-alive", "X-Secret", "s",
			"Keep-Alive", "300", "Proxy-Authorization", "Basic x", "Te", "trailers, deflate", "Upgrade-Insecure-Requests", "1"}},
		"forwarding headers replaced": {"GET", "/v1/fwd?a=1", "", []string{"Forwarded", "for=1.2.3.4", "X-Forwarded-For", "1.2.3.4",
			"X-Forwarded-Host", "evil", "X-Forwarded-Proto", "https"}},
		"identity spoofs and cookies": {"GET", "/v1/who", "", []string{"X-User-ID", "root", "X-Tenant-ID", "other", "x_user_role", "admin",
			"Cookie", "tg_session=abc; keep=1", "User-Agent", "curl/8"}},
		"post body":           {"POST", "/v1/items?x=1;y=2", `{"a":1}`, []string{"Content-Type", "application/json"}},
		"bad query escape":    {"GET", "/v1/q?x=%zz&y=1", "", nil},
		"escaped path":        {"GET", "/v1/a%2Fb/c", "", nil},
		"strip prefix":        {"PUT", "/based/deep/item?z=9", "payload", nil},
		"joined base path":    {"GET", "/joined/x/y", "", nil},
		"chunked trailers":    {"GET", "/v1/chunked", "", nil},
		"event stream":        {"GET", "/v1/sse", "", nil},
		"early hints":         {"GET", "/v1/hints", "", nil},
		"upstream error":      {"GET", "/v1/error", "", nil},
		"no content":          {"DELETE", "/v1/empty", "", nil},
		"repeated values":     {"GET", "/v1/multi", "", nil},
		"gpu seconds":         {"GET", "/v1/gpu", "", nil},
		"body until close":    {"GET", "/v1/untilend", "", nil},
		"empty post":          {"POST", "/v1/nobody", "", nil},
		"head":                {"HEAD", "/v1/hop", "", nil},
		"no user agent given": {"GET", "/v1/ua", "", []string{"User-Agent", ""}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := map[string][2]string{}
			for via, g := range map[string]*gateway{"direct": direct, "ReverseProxy": viaRP} {
				var hints []string
				trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
					hints = append(hints, fmt.Sprintf("%d %v", code, h))
					return nil
				}}
				ctx := httptrace.WithClientTrace(context.Background(), trace)
				var body io.Reader
				if c.body != "" {
					body = strings.NewReader(c.body)
				}
				req, err := http.NewRequestWithContext(ctx, c.method, g.URL+c.path, body)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer tok-alice")
				for i := 0; i+1 < len(c.hdr); i += 2 {
					req.Header.Add(c.hdr[i], c.hdr[i+1])
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				h := res.Header.Clone()
				h.Del("Date")
				h.Del("X-Request-Id")
				var sb strings.Builder
				fmt.Fprintf(&sb, "%d hints=%v body=%q trailer=%v te=%v cl=%d\n", res.StatusCode, hints, b, res.Trailer,
					res.TransferEncoding, res.ContentLength)
				_ = h.Write(&sb)
				got[via] = [2]string{up.lastRequest(t, strings.TrimPrefix(g.URL, "http://")), sb.String()}
			}
			if got["direct"][0] != got["ReverseProxy"][0] {
				t.Errorf("upstream received\n%s\nthrough the direct exchange, and\n%s\nthrough ReverseProxy", got["direct"][0], got["ReverseProxy"][0])
			}
			if got["direct"][1] != got["ReverseProxy"][1] {
				t.Errorf("client received\n%s\nthrough the direct exchange, and\n%s\nthrough ReverseProxy", got["direct"][1], got["ReverseProxy"][1])
			}
		})
	}
}

// TestDirectRouteTimeout: the route timeout bounds the direct exchange as
// a deadline on the upstream connection: a slow answer is a 504, a stream
// that outlives it is cut short, and a connection given back to the pool
// carries no deadline into its next request.
func TestDirectRouteTimeout(t *testing.T) {
	var conns sync.Map // the upstream's client addresses: one per connection
	up := newUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		conns.Store(r.RemoteAddr, true)
		switch r.URL.Path {
		case "/v1/slow":
			time.Sleep(600 * time.Millisecond)
		case "/v1/stream":
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = io.WriteString(w, "start ")
			w.(http.Flusher).Flush()
			time.Sleep(600 * time.Millisecond)
			_, _ = io.WriteString(w, "too late")
			return
		}
		_, _ = io.WriteString(w, "quick")
	})
	g := setup(t, fmt.Sprintf(`
routes:
  - name: plain
    path: /v1/
    type: http
    upstreams: [%s]
    scopes: [infer:text]
    timeout: 300ms
`, up.URL), proxy.Options{})

	res := do(t, "GET", g.URL+"/v1/slow", "tok-alice", nil)
	wantStatus(t, res, http.StatusGatewayTimeout)
	if e := decodeError(t, res); e.Error.Code != "upstream_timeout" {
		t.Fatalf("code %q", e.Error.Code)
	}

	res = do(t, "GET", g.URL+"/v1/stream", "tok-alice", nil)
	wantStatus(t, res, http.StatusOK)
	if b, err := io.ReadAll(res.Body); err == nil || strings.Contains(string(b), "too late") {
		t.Fatalf("a stream past the route timeout read %q, %v; want it cut short", b, err)
	}

	countConns := func() (n int) {
		conns.Range(func(_, _ any) bool { n++; return true })
		return n
	}
	before := countConns()
	if got := readAll(t, do(t, "GET", g.URL+"/v1/quick", "tok-alice", nil).Body); got != "quick" {
		t.Fatalf("quick: %q", got)
	}
	// The connection went back to the pool with the deadline of its
	// exchange (the route timeout, 300 ms from its start) still ahead.
	// Once the network poller has passed that instant, a deadline left on
	// the connection has fired, and the check before reuse would find the
	// connection broken and dial a new one.
	waitPollerPast(t, time.Now().Add(300*time.Millisecond))
	if got := readAll(t, do(t, "GET", g.URL+"/v1/quick", "tok-alice", nil).Body); got != "quick" {
		t.Fatalf("quick after the deadline: %q", got)
	}
	if n := countConns() - before; n != 1 {
		t.Fatalf("two quick requests used %d new upstream connections, want 1 (kept alive, with no deadline left on it)", n)
	}
}

// waitPollerPast returns once the network poller has passed deadline: a
// read with that deadline on an idle loopback connection has timed out,
// as a connection deadline set for an earlier instant has too.
func waitPollerPast(t *testing.T, deadline time.Time) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	_ = c.SetReadDeadline(deadline)
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read on an idle connection: %v, want the deadline", err)
	}
}

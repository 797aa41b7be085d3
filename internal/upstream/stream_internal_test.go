package upstream

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// zeros is an endless body.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestTransportEarlyAnswerToUpload: an upstream that answers a large
// upload before reading it gets its answer through, and its connection is
// not used again: what it reads next may be the rest of the upload.
func TestTransportEarlyAnswerToUpload(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int64
	ended := make(chan struct{})
	t.Cleanup(func() { close(ended) })
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
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				if req.URL.Path == "/next" {
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
					return
				}
				// Refused at once, the body left unread until the test
				// ends.
				_, _ = io.WriteString(c, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\n\r\ntoo much")
				<-ended
			}()
		}
	}()
	url := "http://" + ln.Addr().String()
	tr := setupTransport(t)
	// 64 MiB: more than the socket buffers hold, so the upload is still
	// being written when the answer comes.
	req := newReq(t, "POST", url+"/upload", io.LimitReader(zeros{}, 64<<20))
	req.ContentLength = 64 << 20
	res, got := mustDo(t, tr, req)
	if res.StatusCode != http.StatusRequestEntityTooLarge || got != "too much" {
		t.Fatalf("early answer: %d %q, want 413 \"too much\"", res.StatusCode, got)
	}
	// The connection that carried the upload, used again, would pass
	// this request on to the upstream as the rest of the upload.
	next, err := tr.Do(newReq(t, "GET", url+"/next", nil), Options{Deadline: time.Now().Add(5 * time.Second)})
	if err != nil {
		t.Fatalf("the next request: %v", err)
	}
	b, err := io.ReadAll(next.Body)
	next.Body.Close()
	if err != nil || string(b) != "next" {
		t.Fatalf("the next request got %q, %v", b, err)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: the early-answered one was used again", n)
	}
}

// TestTransportBodyFailureEndsTheExchange: a request body that breaks
// mid-upload fails the exchange with the body's error rather than leaving
// the caller waiting for an answer the upstream will not send.
func TestTransportBodyFailureEndsTheExchange(t *testing.T) {
	up := newConnUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	})
	tr := setupTransport(t)
	broken := errors.New("client went away")
	body := io.MultiReader(io.LimitReader(zeros{}, 2*MaxDirectBody), &failing{broken})
	_, err := tr.Do(newReq(t, "POST", up.URL+"/upload", body), Options{Deadline: time.Now().Add(5 * time.Second)})
	if !errors.Is(err, broken) {
		t.Fatalf("err %v, want the body's error", err)
	}
}

type failing struct{ err error }

func (f *failing) Read([]byte) (int, error) { return 0, f.err }

// TestTransportTLS: HTTPS upstreams ride the own transport, kept alive;
// an answer whose bytes behind it are held by the TLS layer (decrypted,
// not yet read) keeps its connection from being used again.
func TestTransportTLS(t *testing.T) {
	const next = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
	const poison = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nPOISONED"
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.StartTLS()
	srv.Close() // only its certificate is used
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: srv.TLS.Certificates, DynamicRecordSizingDisabled: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int64
	// The first record is exactly the transport's read buffer: the head
	// and the start of the body. The second holds the rest of the body,
	// at least a buffer's worth (so it is read past the buffer, straight
	// from the TLS layer), and then an answer nobody asked for.
	head := "HTTP/1.1 200 OK\r\nContent-Length: "
	const rest = 10000
	first := headBuffer - len(head) - len("18000\r\n\r\n")
	body := strings.Repeat("a", first) + strings.Repeat("b", rest)
	head += strconv.Itoa(len(body)) + "\r\n\r\n"
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
					switch req.URL.Path {
					case "/split":
						_, _ = io.WriteString(c, head+body[:first])
						_, _ = io.WriteString(c, body[first:]+poison)
					default:
						_, _ = io.WriteString(c, next)
					}
				}
			}()
		}
	}()
	tr := New(Config{TLS: &tls.Config{RootCAs: roots}})
	t.Cleanup(tr.CloseIdleConnections)
	url := "https://" + ln.Addr().String()
	for range 3 {
		if _, got := mustDo(t, tr, newReq(t, "GET", url+"/kept", nil)); got != "next" {
			t.Fatalf("got %q", got)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("3 requests over TLS used %d connections, want 1", n)
	}
	res, err := tr.RoundTrip(newReq(t, "GET", url+"/split", nil))
	if err != nil {
		t.Fatal(err)
	}
	// Read with a buffer larger than the transport's, as a proxy copies.
	buf := make([]byte, 64<<10)
	var got strings.Builder
	for {
		n, err := res.Body.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			break
		}
	}
	res.Body.Close()
	if got.String() != body {
		t.Fatalf("split answer: %d bytes, want %d", got.Len(), len(body))
	}
	if _, got := mustDo(t, tr, newReq(t, "GET", url+"/next", nil)); got != "next" {
		t.Fatalf("the request after the split answer got %q", got)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: the connection with bytes left in its TLS layer was used again", n)
	}
}

// TestFallbackNeverReusesConnections: what http.Transport still carries
// (protocol upgrades, Expect: 100-continue) gets a connection of its own
// each time, so an answer it cannot check is never followed by another
// caller's on the same connection.
func TestFallbackNeverReusesConnections(t *testing.T) {
	up := newConnUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Write([]byte("ok")) // an upgrade refused: a plain answer
	})
	tr := setupTransport(t)
	for range 3 {
		req := newReq(t, "GET", up.URL+"/ws", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		if Direct(req) {
			t.Fatal("an upgrade takes the direct path")
		}
		mustDo(t, tr, req)
		req = newReq(t, "POST", up.URL+"/expect", strings.NewReader("body"))
		req.Header.Set("Expect", "100-continue")
		if Direct(req) {
			t.Fatal("Expect: 100-continue takes the direct path")
		}
		mustDo(t, tr, req)
	}
	if n := up.conns.Load(); n != 6 {
		t.Fatalf("6 requests through http.Transport used %d connections, want 6", n)
	}
}

// heldConn is a server's socket whose writes can be held and sent later
// in one write, with bytes of its own behind them.
type heldConn struct {
	net.Conn
	hold bool
	buf  []byte
}

func (c *heldConn) Write(p []byte) (int, error) {
	if c.hold {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// TestTransportTLSPartialRecord: the start of a TLS record that arrives
// with an answer (and that the TLS layer keeps, waiting for the rest)
// keeps the connection from being used again.
func TestTransportTLSPartialRecord(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.StartTLS()
	srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int64
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer raw.Close()
				hc := &heldConn{Conn: raw}
				c := tls.Server(hc, &tls.Config{Certificates: srv.TLS.Certificates})
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if req.URL.Path != "/partial" {
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
						continue
					}
					// The answer's record and, in the same write, the
					// first bytes of another record.
					hc.hold = true
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					hc.hold = false
					_, _ = raw.Write(append(hc.buf, 0x17, 0x03, 0x03))
					hc.buf = nil
				}
			}()
		}
	}()
	tr := New(Config{TLS: &tls.Config{RootCAs: roots}})
	t.Cleanup(tr.CloseIdleConnections)
	url := "https://" + ln.Addr().String()
	if _, got := mustDo(t, tr, newReq(t, "GET", url+"/partial", nil)); got != "ok" {
		t.Fatalf("got %q", got)
	}
	next, err := tr.Do(newReq(t, "GET", url+"/next", nil), Options{Deadline: time.Now().Add(5 * time.Second)})
	if err != nil {
		t.Fatalf("the request after a partial record: %v", err)
	}
	b, _ := io.ReadAll(next.Body)
	next.Body.Close()
	if string(b) != "next" || conns.Load() != 2 {
		t.Fatalf("the request after a partial record got %q over %d connections, want \"next\" over 2", b, conns.Load())
	}
}

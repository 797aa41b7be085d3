// Package upstream carries requests to HTTP and HTTPS upstreams on the
// caller's own goroutine, over pooled keep-alive connections, and hands
// protocol upgrades, Expect: 100-continue and request trailers to
// net/http's http.Transport, on connections that are never used twice. It
// knows requests and responses only: the caller passes the exchange's
// deadline and a receiver of interim answers as Options.
//
// A connection is used again only when nothing can be left of one answer
// to be read as another's: it is checked for unsolicited bytes before
// every reuse and at the end of every answer, and closed after anything
// that could be framed two ways.
package upstream

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/internal/h1"
)

// MaxDirectBody is the largest request body written on the caller's
// goroutine before the response is read. A bigger body, or one of unknown
// length (sent chunked), is written by a goroutine of its own while the
// caller reads the response: an upstream may answer (413, 401) before it
// has read a large upload, and a connection whose request is not written
// to the end shortly after its answer ended is closed.
const MaxDirectBody = 64 << 10

// max1xx is the most interim (1xx) answers read before the final one, as
// in http.Transport.
const max1xx = 5

// Transport carries requests to HTTP and HTTPS upstreams on the caller's
// own goroutine: it writes the request on a pooled keep-alive connection
// and reads the response from it, with no goroutine hand-offs.
// http.Transport runs a read and a write goroutine per connection and
// passes every request and response between them and the caller over
// channels; on a small machine those hand-offs cost more CPU than the rest
// of the proxy, and its read goroutine can put a connection back in the
// pool before it has looked at the bytes behind an answer. Requests the
// direct path does not take (upgrades, Expect: 100-continue, trailers) go
// to fallback, which opens a connection per request.
type Transport struct {
	fallback    *http.Transport
	tls         *tls.Config // for HTTPS upstreams; ServerName is set per host
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle     int           // idle connections kept per upstream
	idleTimeout time.Duration // an idle connection older than this is closed
	now         func() time.Time
	fields      *h1.Parser

	bufs sync.Pool // of *[]byte, copyBuffer long: request bodies are copied through them

	mu        sync.Mutex
	idle      map[string][]*upConn // by scheme://host:port, most recently used last
	lastSweep time.Time
}

// Config is how a Transport reaches its upstreams.
type Config struct {
	// TLS configures connections to HTTPS upstreams (the roots their
	// certificates are verified against, client certificates); ServerName
	// is set to the upstream's host when empty. Defaults to the system's
	// roots.
	TLS *tls.Config
}

// New returns a transport keeping up to 256 idle connections per
// upstream, each for at most 90 s.
func New(c Config) *Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tc := &tls.Config{}
	if c.TLS != nil {
		tc = c.TLS.Clone()
	}
	if tc.ClientSessionCache == nil {
		tc.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	}
	tc.NextProtos = nil // HTTP/1.1 only
	return &Transport{
		// A connection of the fallback carries one request: an answer it
		// cannot check (a refused upgrade, an early answer to an
		// Expect: 100-continue) is never followed by another caller's.
		fallback: &http.Transport{
			DialContext:           d.DialContext,
			TLSClientConfig:       tc,
			DisableKeepAlives:     true,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			DisableCompression:    true,
			ForceAttemptHTTP2:     false,
		},
		tls:         tc,
		dial:        d.DialContext,
		maxIdle:     256,
		idleTimeout: 90 * time.Second,
		now:         time.Now,
		idle:        map[string][]*upConn{},
		fields:      h1.NewParser(),
	}
}

// copyBuffer is the size of the buffers request bodies are copied through.
const copyBuffer = 32 << 10

// copyBuf returns a buffer to copy a request body through; put it back in
// t.bufs after.
func (t *Transport) copyBuf() *[]byte {
	if b, ok := t.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, copyBuffer)
	return &b
}

func derefBuf(b *[]byte) []byte {
	if b == nil {
		return nil
	}
	return *b
}

// Options are what one exchange asks of the transport beyond its request.
type Options struct {
	// Deadline bounds the exchange on the direct path, the response body
	// included, as the connection's deadline. Zero: only the request's
	// context bounds it.
	Deadline time.Time
	// Interim receives the 1xx answers (103 Early Hints) before the final
	// one, when the request's context carries no client trace. Nil drops
	// them.
	Interim func(code int, h http.Header)
}

// Direct reports whether req is carried by the transport itself; every
// other request goes to http.Transport, on a connection of its own.
func Direct(req *http.Request) bool {
	return (req.URL.Scheme == "http" || req.URL.Scheme == "https") && req.URL.Host != "" && Plain(req)
}

// Plain reports whether req is an exchange the direct path can carry as
// one request and one answer: not CONNECT, no upgrade, no 100-continue,
// no trailers, no transfer coding but chunked.
func Plain(req *http.Request) bool {
	h := req.Header
	return req.Method != http.MethodConnect && len(h["Upgrade"]) == 0 && len(h["Expect"]) == 0 &&
		len(req.Trailer) == 0 &&
		(len(req.TransferEncoding) == 0 || len(req.TransferEncoding) == 1 && req.TransferEncoding[0] == "chunked")
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.Do(req, Options{})
}

// Do carries req as RoundTrip does, with the exchange's options.
func (t *Transport) Do(req *http.Request, o Options) (*http.Response, error) {
	if !Direct(req) {
		return t.fallback.RoundTrip(req)
	}
	secure := req.URL.Scheme == "https"
	port := "80"
	if secure {
		port = "443"
	}
	addr := net.JoinHostPort(req.URL.Hostname(), cmp.Or(req.URL.Port(), port))
	for attempt := 0; ; attempt++ {
		pc, reused, err := t.get(req.Context(), addr, secure, o.Deadline)
		if err != nil {
			return nil, err
		}
		res, err := pc.roundTrip(req, o)
		if err == nil {
			return res, nil
		}
		// A kept-alive connection the upstream closed while it sat idle
		// fails before any answer; send the request once more on a new
		// connection when that cannot run it twice.
		if attempt > 0 || !reused || !retryable(req, pc, err) {
			return nil, err
		}
		if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
}

// retryable follows http.Transport: a request may be sent again when
// nothing of it reached the connection, or when it is idempotent,
// replayable and no byte of an answer came back.
func retryable(req *http.Request, pc *upConn, err error) bool {
	if req.Context().Err() != nil || pc.readAny {
		return false
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if pc.written == 0 {
		return replayable
	}
	if !replayable || !errors.Is(err, errUpstreamClosed) {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return len(req.Header["Idempotency-Key"]) > 0 || len(req.Header["X-Idempotency-Key"]) > 0
}

// errUpstreamClosed is a connection that ended before its response began.
var errUpstreamClosed = errors.New("upstream closed the connection before answering")

var (
	errUnrequestedSwitch = errors.New("upstream switched protocols unasked")
	errTooMany1xx        = errors.New("upstream sent too many interim answers")
)

// CloseIdleConnections closes every idle upstream connection.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*upConn{}
	t.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			_ = pc.conn.Close()
		}
	}
	t.fallback.CloseIdleConnections()
}

// get returns a live idle connection to addr, or dials one (with TLS when
// secure).
func (t *Transport) get(ctx context.Context, addr string, secure bool, deadline time.Time) (pc *upConn, reused bool, err error) {
	key := addr
	if secure {
		key = "https://" + addr
	}
	now := t.now()
	for {
		t.mu.Lock()
		list := t.idle[key]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		pc = list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[key] = list[:len(list)-1]
		t.mu.Unlock()
		// Every reuse is preceded by a look at the socket: a byte that
		// arrived while the connection sat idle belongs to no request
		// (an unsolicited answer, the rest of a misframed one, or the
		// upstream's FIN), so the connection is closed, not used.
		if now.Sub(pc.idleSince) < t.idleTimeout && pc.quiet() {
			return pc, true, nil
		}
		_ = pc.conn.Close()
	}
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	conn, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, fmt.Errorf("dial %s: %w", addr, err)
	}
	pc = &upConn{t: t, addr: addr, key: key, conn: conn, peek: newPeeker(conn)}
	if secure {
		cfg := t.tls
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		pc.records = &recordConn{Conn: conn}
		tc := tls.Client(pc.records, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, false, fmt.Errorf("tls handshake with %s: %w", addr, err)
		}
		pc.conn, pc.tls = tc, true
	}
	pc.br = bufio.NewReaderSize(pc.conn, headBuffer)
	pc.bw = bufio.NewWriterSize(pc, 4<<10)
	return pc, false, nil
}

// put returns pc to the idle pool, or closes it when the pool is full.
func (t *Transport) put(pc *upConn) {
	now := t.now()
	pc.idleSince = now
	var stale []*upConn
	t.mu.Lock()
	list := t.idle[pc.key]
	full := len(list) >= t.maxIdle
	if !full {
		t.idle[pc.key] = append(list, pc)
	}
	if now.Sub(t.lastSweep) > t.idleTimeout/2 {
		t.lastSweep = now
		stale = t.sweepLocked(now)
	}
	t.mu.Unlock()
	if full {
		_ = pc.conn.Close()
	}
	for _, s := range stale {
		_ = s.conn.Close()
	}
}

// sweepLocked takes the connections idle longer than idleTimeout out of
// the pool (the oldest are first in each list) and returns them.
func (t *Transport) sweepLocked(now time.Time) []*upConn {
	var stale []*upConn
	for key, list := range t.idle {
		n := 0
		for n < len(list) && now.Sub(list[n].idleSince) >= t.idleTimeout {
			n++
		}
		if n == 0 {
			continue
		}
		stale = append(stale, list[:n]...)
		rest := append([]*upConn(nil), list[n:]...)
		if len(rest) == 0 {
			delete(t.idle, key)
		} else {
			t.idle[key] = rest
		}
	}
	return stale
}

// upConn is one keep-alive connection to an upstream.
type upConn struct {
	t         *Transport
	addr      string // host:port
	key       string // of the idle pool
	conn      net.Conn
	tls       bool        // conn is a *tls.Conn, over records
	records   *recordConn // the socket under TLS
	peek      *peeker
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	written   int64 // bytes of the current request on the wire
	readAny   bool  // a byte of the current response arrived
	deadline  bool  // the current exchange set a deadline on conn
	// wrote receives the end of the request's writing when a goroutine
	// of its own writes it; nil once received, or when the caller wrote
	// it.
	wrote chan error
}

// endWrite waits for the goroutine writing the request, if one is, and
// returns its error.
func (pc *upConn) endWrite() error {
	if pc.wrote == nil {
		return nil
	}
	err := <-pc.wrote
	pc.wrote = nil
	return err
}

// Write counts what reaches the connection, for retryable.
func (pc *upConn) Write(p []byte) (int, error) {
	n, err := pc.conn.Write(p)
	pc.written += int64(n)
	return n, err
}

// roundTrip writes req and reads the head of its response, by o's
// deadline when there is one. The response body returns the connection to
// the pool when it is read to the end.
func (pc *upConn) roundTrip(req *http.Request, o Options) (*http.Response, error) {
	ctx := req.Context()
	pc.written, pc.readAny = 0, false
	if !o.Deadline.IsZero() {
		_ = pc.conn.SetDeadline(o.Deadline)
		pc.deadline = true
	}
	// A deadline in the past fails a blocked read or write at once.
	stop := context.AfterFunc(ctx, func() { _ = pc.conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = pc.conn.Close()
		var be *bodyError
		if werr := pc.endWrite(); errors.As(werr, &be) {
			err = werr // the request's own body failed: that is the cause
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("upstream %s: %w", pc.addr, ctx.Err())
		}
		return nil, fmt.Errorf("upstream %s: %w", pc.addr, err)
	}
	if streamed(req) {
		// The caller reads the answer while the body is written: an
		// upstream may answer before it reads a large upload.
		pc.wrote = make(chan error, 1)
		go func() {
			buf := pc.t.copyBuf()
			err := writeRequest(pc.bw, req, *buf)
			pc.t.bufs.Put(buf)
			if err == nil {
				err = pc.bw.Flush()
			}
			var be *bodyError
			if errors.As(err, &be) {
				// The upstream waits for the rest of a body that will
				// not come: end the reading of its answer.
				_ = pc.conn.SetDeadline(time.Unix(1, 0))
			}
			pc.wrote <- err
		}()
	} else {
		var buf *[]byte
		if req.Body != nil && req.Body != http.NoBody {
			buf = pc.t.copyBuf()
		}
		err := writeRequest(pc.bw, req, derefBuf(buf))
		if buf != nil {
			pc.t.bufs.Put(buf)
		}
		if err != nil {
			return fail(err)
		}
		if err := pc.bw.Flush(); err != nil {
			return fail(err)
		}
	}
	var res *http.Response
	keep := true // no head so far announced bytes that may follow it
	for interim := 0; ; interim++ {
		if _, err := pc.br.Peek(1); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
				err = errUpstreamClosed
			}
			return fail(err)
		}
		pc.readAny = true
		ok, err := checkHead(pc.br)
		if err != nil {
			return fail(err)
		}
		keep = keep && ok
		r := parseResponse(pc.t.fields, pc.br, req)
		if r == nil {
			if r, err = http.ReadResponse(pc.br, req); err != nil {
				return fail(err)
			}
		}
		if r.StatusCode == http.StatusSwitchingProtocols {
			// The direct path never asks for an upgrade: the upstream
			// now speaks something else on this connection.
			return fail(errUnrequestedSwitch)
		}
		if r.StatusCode >= 200 {
			res = r
			break
		}
		if interim == max1xx {
			return fail(errTooMany1xx)
		}
		// An interim answer (103 Early Hints) goes to the client trace,
		// through which ReverseProxy passes it on, as http.Transport does.
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(r.StatusCode, textproto.MIMEHeader(r.Header)); err != nil {
				return fail(err)
			}
		} else if o.Interim != nil {
			o.Interim(r.StatusCode, r.Header)
		}
	}
	if pc.wrote != nil {
		select {
		case err := <-pc.wrote:
			pc.wrote = nil
			keep = keep && err == nil
		default: // finish decides
		}
	}
	b := &upBody{pc: pc, res: res, stop: stop, keep: keep && !res.Close && !req.Close}
	if res.Body == http.NoBody || res.Body == nil {
		b.finish(true)
		res.Body = http.NoBody
		return res, nil
	}
	b.body = res.Body
	res.Body = b
	return res, nil
}

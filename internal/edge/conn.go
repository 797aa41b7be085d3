package edge

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/internal/h1"
)

// Connection states, for Shutdown.
const (
	stateIdle   int32 = iota // waiting for a request
	stateActive              // reading or serving a request
	stateClosed              // closed by Shutdown while idle
)

const (
	readBufferSize  = 4 << 10
	writeBufferSize = 4 << 10
	// maxDiscard is how much of a body the handler left unread is read
	// and dropped to keep the connection (net/http's figure).
	maxDiscard = 256 << 10
)

// conn is one client connection.
type conn struct {
	srv    *Server
	nc     net.Conn
	remote string
	cr     *connReader
	br     *bufio.Reader
	bw     *bufio.Writer
	state  atomic.Int32
	front  [frontSize]byte // a response's first bytes while its length is open
	timer  *time.Timer     // starts the disconnect watch of a long request
	cur    atomic.Pointer[exchange]
	// headBy is when the first request's head must have arrived: the
	// connection's accept plus ReadHeaderTimeout. Zero once it has.
	headBy time.Time
}

// exchange is the request being served, as the watch timer sees it.
type exchange struct {
	c        *conn
	cancel   context.CancelFunc
	body     *body
	watchDue atomic.Bool // the timer fired or the handler flushed
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{srv: s, nc: nc, remote: nc.RemoteAddr().String(), headBy: time.Now().Add(s.opts.ReadHeaderTimeout)}
	c.cr = &connReader{nc: nc}
	c.cr.cond = sync.NewCond(&c.cr.mu)
	c.br = bufio.NewReaderSize(c.cr, readBufferSize)
	c.bw = bufio.NewWriterSize(nc, writeBufferSize)
	return c
}

// serve reads and serves requests until the connection ends or is handed
// to net/http.
func (c *conn) serve() {
	handedOff := false
	defer func() {
		if err := recover(); err != nil && err != http.ErrAbortHandler {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.srv.opts.ErrorLog.Printf("http: panic serving %v: %v\n%s", c.remote, err, buf)
		}
		if c.timer != nil {
			c.timer.Stop()
		}
		if !handedOff {
			_ = c.bw.Flush()
			_ = c.nc.Close()
		}
		c.srv.untrack(c)
	}()
	for {
		req, ok := c.readRequest()
		if req == nil {
			if ok {
				handedOff = c.handOff()
			}
			return
		}
		if !c.serveRequest(req) {
			return
		}
	}
}

// readRequest waits for the next request and parses its head. It returns
// nil, false when the connection is done, and nil, true when the request
// is for net/http.
//
// As net/http: a new connection's first request, from its first byte to
// its blank line, must arrive within ReadHeaderTimeout of the accept;
// between keep-alive requests the wait for the next request's first byte
// is bounded by IdleTimeout, and the rest of its head by
// ReadHeaderTimeout from that byte.
func (c *conn) readRequest() (*request, bool) {
	headBy := c.headBy
	c.headBy = time.Time{}
	if c.br.Buffered() == 0 {
		wait := headBy
		if wait.IsZero() {
			wait = time.Now().Add(c.srv.opts.IdleTimeout)
		}
		_ = c.nc.SetReadDeadline(wait)
		if _, err := c.br.Peek(1); err != nil {
			return nil, false
		}
	}
	if !c.state.CompareAndSwap(stateIdle, stateActive) {
		return nil, false // closed by Shutdown
	}
	if headBy.IsZero() {
		headBy = time.Now().Add(c.srv.opts.ReadHeaderTimeout)
	}
	_ = c.nc.SetReadDeadline(headBy)
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		n := h1.HeadEnd(buf)
		if n < 0 {
			c.headBy = headBy
			return nil, true
		}
		if n > 0 {
			req := new(request)
			if n > c.srv.opts.MaxHeaderBytes || !c.srv.parseHead(buf[:n], req) {
				c.headBy = headBy
				return nil, true
			}
			_, _ = c.br.Discard(n)
			_ = c.nc.SetReadDeadline(time.Time{})
			return req, false
		}
		if c.br.Buffered() >= readBufferSize {
			c.headBy = headBy
			return nil, true // a head larger than the buffer
		}
		if _, err := c.br.Peek(c.br.Buffered() + 1); err != nil {
			return nil, false // the head was cut short, or timed out
		}
	}
}

// handOff gives the connection, with what was read of it, to net/http.
func (c *conn) handOff() bool {
	buffered, _ := c.br.Peek(c.br.Buffered())
	rc := &replayConn{Conn: c.nc, pending: append([]byte(nil), buffered...), headBy: c.headBy}
	_ = c.nc.SetReadDeadline(time.Time{})
	return c.srv.handoff.hand(rc)
}

// serveRequest runs the handler for one request and finishes its
// response; false means the connection must close.
func (c *conn) serveRequest(p *request) bool {
	ctx, cancel := context.WithCancel(c.srv.base)
	r := &http.Request{
		Method: p.method, URL: p.url, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: p.header, Host: p.host, RequestURI: p.target, RemoteAddr: c.remote, Close: p.close,
		ContentLength: p.contentLength, Body: http.NoBody,
	}
	x := &exchange{c: c, cancel: cancel}
	if p.contentLength > 0 {
		x.body = &body{c: c, left: p.contentLength}
		r.Body = x.body
	}
	r = r.WithContext(ctx)
	w := &response{c: c, req: r, header: make(http.Header), cl: -1, closeAfter: p.close, head: r.Method == http.MethodHead}
	w.x = x
	c.cur.Store(x)
	c.armWatch()
	c.srv.opts.Handler.ServeHTTP(w, r)
	// The request leaves cur before the watch is stopped: a timer firing
	// now finds no request to watch, and a watch it started is stopped.
	c.cur.Store(nil)
	c.disarmWatch()
	cancel() // as net/http: the context has ended before the answer's last bytes leave
	keep := w.finish(x.body)
	if keep && c.cr.failed() {
		keep = false
	}
	if !keep {
		return false
	}
	c.state.Store(stateIdle)
	return true
}

// armWatch starts the timer after which the connection is watched for the
// client going away while the handler runs.
func (c *conn) armWatch() {
	if c.timer == nil {
		c.timer = time.AfterFunc(c.srv.opts.WatchAfter, c.watch)
		return
	}
	c.timer.Reset(c.srv.opts.WatchAfter)
}

// watch starts the background read that cancels the request when the
// client goes away, once the request body (if any) is read to its end;
// until then the body's end starts it (watchIfDue).
func (c *conn) watch() {
	x := c.cur.Load()
	if x == nil {
		return
	}
	x.watchDue.Store(true)
	if x.body != nil && !x.body.consumed() {
		return
	}
	c.cr.startWatch(x)
}

// disarmWatch stops the timer and a running background read.
func (c *conn) disarmWatch() {
	c.timer.Stop()
	c.cr.stopWatch()
}

// connReader reads the connection for bufio, and holds the byte a
// background read found (a pipelined request's first byte).
type connReader struct {
	nc      net.Conn
	mu      sync.Mutex
	cond    *sync.Cond
	inRead  bool // a background read is running
	aborted bool // stopWatch ended it
	hasByte bool
	byteBuf [1]byte
	gone    bool // the background read saw the connection end
	x       *exchange
}

func (cr *connReader) Read(p []byte) (int, error) {
	cr.mu.Lock()
	if cr.inRead {
		cr.mu.Unlock()
		panic("edge: read while a background read is running")
	}
	if cr.hasByte && len(p) > 0 {
		p[0] = cr.byteBuf[0]
		cr.hasByte = false
		cr.mu.Unlock()
		return 1, nil
	}
	cr.mu.Unlock()
	return cr.nc.Read(p)
}

// startWatch reads one byte in the background for x; an error there means
// the client went away, and cancels x's context.
func (cr *connReader) startWatch(x *exchange) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.inRead || cr.hasByte || cr.gone || x.c.cur.Load() != x {
		return
	}
	cr.inRead, cr.x = true, x
	go cr.backgroundRead()
}

func (cr *connReader) backgroundRead() {
	n, err := cr.nc.Read(cr.byteBuf[:])
	cr.mu.Lock()
	if n == 1 {
		cr.hasByte = true
	}
	var ne net.Error
	if err != nil && !(cr.aborted && errors.As(err, &ne) && ne.Timeout()) {
		cr.gone = true
		cr.x.cancel()
	}
	cr.aborted, cr.inRead, cr.x = false, false, nil
	cr.mu.Unlock()
	cr.cond.Broadcast()
}

// stopWatch ends a running background read and waits for it.
func (cr *connReader) stopWatch() {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if !cr.inRead {
		return
	}
	cr.aborted = true
	_ = cr.nc.SetReadDeadline(time.Unix(1, 0)) // long past: the blocked read ends at once
	for cr.inRead {
		cr.cond.Wait()
	}
	_ = cr.nc.SetReadDeadline(time.Time{})
}

// failed reports whether a background read saw the connection end.
func (cr *connReader) failed() bool {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.gone
}

// body is a request body of known length, read from the connection.
type body struct {
	mu     sync.Mutex
	c      *conn
	left   int64
	closed bool
	err    error
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.c.br.Read(p)
	b.left -= int64(n)
	switch {
	case b.left == 0:
		b.err = io.EOF
		if x := b.c.cur.Load(); x != nil && x.body == b {
			// The watch waits for the body's end; a stream flushed
			// before it is watched from here.
			defer b.c.watchIfDue()
		}
	case err == io.EOF:
		b.err = io.ErrUnexpectedEOF
	case err != nil:
		b.err = err
	}
	return n, b.err
}

// Close ends reading; what is left is dropped by the server.
func (b *body) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// consumed reports whether nothing of the body is left on the socket:
// read, or already in the read buffer, so a background read cannot take
// a byte of it.
func (b *body) consumed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.left == 0 || b.err == nil && int64(b.c.br.Buffered()) >= b.left
}

// unread returns how much of the body is left on the connection.
func (b *body) unread() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil && b.err != io.EOF {
		return -1 // the connection failed
	}
	return b.left
}

// discard closes the body and reads what is left, at most maxDiscard; it
// reports whether the connection can carry another request.
func (b *body) discard() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.err != nil && b.err != io.EOF {
		return false
	}
	if b.left > maxDiscard {
		return false
	}
	n, err := b.c.br.Discard(int(b.left))
	b.left -= int64(n)
	return err == nil
}

// watchIfDue starts the watch when the timer has fired or a flush asked
// for it while the body was still being read.
func (c *conn) watchIfDue() {
	x := c.cur.Load()
	if x == nil || !x.watchDue.Load() {
		return
	}
	c.cr.startWatch(x)
}

package edge

import (
	"net"
	"sync"
	"time"
)

// handoffListener is how connections reach the net/http server: Accept
// returns the connections the fast path handed over.
type handoffListener struct {
	addr      net.Addr
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newHandoffListener() *handoffListener {
	return &handoffListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// hand gives c to the net/http server; false when it has stopped.
func (l *handoffListener) hand(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *handoffListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr {
	if l.addr == nil {
		return &net.TCPAddr{}
	}
	return l.addr
}

// replayConn returns the bytes the fast path had read before the rest of
// the connection. The head it carries keeps the deadline it had here:
// net/http's first read deadline, the one for that head, is held to
// headBy, so handing a head over does not give its sender more time.
type replayConn struct {
	net.Conn
	pending []byte
	headBy  time.Time
	once    sync.Once
}

func (c *replayConn) SetReadDeadline(t time.Time) error {
	c.once.Do(func() {
		if !c.headBy.IsZero() && (t.IsZero() || t.After(c.headBy)) {
			t = c.headBy
		}
	})
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline sets both deadlines, the read one as SetReadDeadline does.
func (c *replayConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the connection when it can, so net/http's
// answer to an oversized head reaches the client before the close.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

package limit

import (
	"net"
	"sync"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/edge"
)

// Listener returns l accepting at most max connections at once
// (server.max_connections); further clients wait in the kernel's backlog
// until a connection closes. max <= 0 returns l unchanged.
func Listener(l net.Listener, max int) net.Listener {
	if max <= 0 {
		return l
	}
	return &capListener{Listener: l, sem: make(chan struct{}, max), done: make(chan struct{})}
}

type capListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *capListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &capConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *capListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type capConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// CloseWrite half-closes a TCP connection, as net/http does before
// hanging up on a request it refused.
func (c *capConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// Harden sets the server options o's limits against slow and hostile
// clients from s: the header read timeout, the idle timeout and the
// largest header block. Bodies are capped per route by the data plane.
func Harden(o *edge.Options, s config.Server) {
	o.ReadHeaderTimeout = s.ReadHeaderTimeout
	o.IdleTimeout = s.IdleTimeout
	o.MaxHeaderBytes = s.MaxHeaderBytes
}

package upstream

import (
	"errors"
	"net"
	"os"
	"time"
)

// quiet reports whether nothing arrived on the idle connection: nothing
// on its socket and, over TLS, nothing held by the TLS layer: no part of
// a record read from the socket (which the TLS layer keeps until the rest
// comes), and no whole record or decrypted bytes. For the latter, a read
// with a deadline in the past: crypto/tls returns what it holds without
// touching the socket, or the timeout, which it does not keep as the
// connection's error.
func (pc *upConn) quiet() bool {
	if !pc.peek.quietNow() {
		return false
	}
	if !pc.tls {
		return true
	}
	if !pc.records.atBoundary() {
		return false
	}
	_ = pc.conn.SetReadDeadline(time.Unix(1, 0))
	_, err := pc.br.Peek(1)
	_ = pc.conn.SetReadDeadline(time.Time{})
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// recordConn is the socket under a TLS connection. It follows the TLS
// record framing of what it reads, so that a part of a record read from
// the socket while the connection sat idle is known.
type recordConn struct {
	net.Conn
	head  [5]byte // of the record being read
	nhead int     // bytes of head read
	left  int     // bytes of the record's payload still to come
}

func (c *recordConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for b := p[:n]; len(b) > 0; {
		if c.left > 0 {
			k := min(c.left, len(b))
			c.left -= k
			b = b[k:]
			continue
		}
		k := copy(c.head[c.nhead:], b)
		c.nhead += k
		b = b[k:]
		if c.nhead == len(c.head) {
			c.nhead, c.left = 0, int(c.head[3])<<8|int(c.head[4])
		}
	}
	return n, err
}

// atBoundary reports whether what was read ends with a whole record.
func (c *recordConn) atBoundary() bool { return c.nhead == 0 && c.left == 0 }

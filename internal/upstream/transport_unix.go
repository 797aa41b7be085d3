//go:build unix

package upstream

import (
	"net"
	"syscall"
)

// peeker looks at a connection's socket without reading from it. It is
// made once per connection, so a look allocates nothing.
type peeker struct {
	rc    syscall.RawConn
	buf   [1]byte
	quiet bool
	peek  func(fd uintptr) bool
}

func newPeeker(c net.Conn) *peeker {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	pk := &peeker{rc: rc}
	pk.peek = func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), pk.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		pk.quiet = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	}
	return pk
}

// quietNow reports whether nothing has arrived on an idle connection: a
// peek that would block means neither data nor the upstream's FIN. A
// connection it cannot look at counts as quiet.
func (pk *peeker) quietNow() bool {
	if pk == nil {
		return true
	}
	pk.quiet = false
	return pk.rc.Read(pk.peek) == nil && pk.quiet
}

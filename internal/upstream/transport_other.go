//go:build !unix

package upstream

import "net"

// peeker cannot look at a socket here: a byte that arrived while a
// connection sat idle is caught when the connection is read, and a
// connection the upstream closed by RoundTrip's retry.
type peeker struct{}

func newPeeker(net.Conn) *peeker { return nil }

func (*peeker) quietNow() bool { return true }

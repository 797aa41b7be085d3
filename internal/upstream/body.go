package upstream

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// upBody is a response body that gives its connection back when read to
// the end and closes it when abandoned.
type upBody struct {
	pc   *upConn
	res  *http.Response
	body io.ReadCloser
	stop func() bool
	keep bool
	done bool
}

func (b *upBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	if err != nil {
		ok := errors.Is(err, io.EOF)
		b.finish(ok)
		if !ok {
			if ctxErr := b.res.Request.Context().Err(); ctxErr != nil {
				err = fmt.Errorf("upstream %s: %w", b.pc.addr, ctxErr)
			}
		}
	}
	return n, err
}

// Close abandons the rest of the body: the connection is closed rather
// than drained, since the rest may be a long stream.
func (b *upBody) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

// writeGrace is how long after its answer ended a request may still be
// being written (its last bytes on their way) with its connection kept,
// as in http.Transport.
const writeGrace = 50 * time.Millisecond

// finish ends the exchange: the connection goes back to the pool when the
// response ended cleanly, nothing cancelled it, the request was written to
// the end and no byte follows the answer; else it is closed. A request
// still being written writeGrace after its answer is one the upstream
// answered without reading it all: its connection is closed, which ends
// the writing, so nothing reads the request's body once the exchange is
// over.
func (b *upBody) finish(ok bool) {
	b.done = true
	stopped := b.stop()
	if b.pc.wrote != nil && !(ok && stopped && b.keep) {
		_ = b.pc.conn.Close()
		_ = b.pc.endWrite()
		return
	}
	if b.pc.wrote != nil {
		grace := time.NewTimer(writeGrace)
		select {
		case err := <-b.pc.wrote:
			b.pc.wrote = nil
			grace.Stop()
			ok = ok && err == nil
		case <-grace.C:
			_ = b.pc.conn.Close()
			_ = b.pc.endWrite()
			return
		}
	}
	if ok && stopped && b.keep && b.pc.br.Buffered() == 0 {
		if b.pc.deadline {
			b.pc.deadline = false
			_ = b.pc.conn.SetDeadline(time.Time{})
		}
		b.pc.t.put(b.pc)
		return
	}
	_ = b.pc.conn.Close()
}

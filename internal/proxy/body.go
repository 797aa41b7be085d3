package proxy

import (
	"bytes"
	"io"
	"net/http"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// readBody reads the whole body, at most limit bytes; over the limit is
// ETooLarge.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	size := r.ContentLength
	if size < 0 {
		size = 512
	}
	// One byte more than expected, so a body of the announced length is
	// read into one allocation and EOF is seen without growing.
	buf := make([]byte, 0, size+1)
	lr := io.LimitReader(r.Body, limit+1)
	for {
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, tollgate.Errorf(tollgate.EInvalid, "the request body could not be read")
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
	if int64(len(buf)) > limit {
		return nil, tooLarge(limit)
	}
	return buf, nil
}

// setBody replaces the request body with b.
func setBody(r *http.Request, b []byte) {
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	r.TransferEncoding = nil
	r.GetBody = nil
}

// limitedBody streams a body of unknown length, failing past the route's
// limit; the exchange learns that the failure was the size.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
	x    *exchange
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	l.x.bytesIn += int64(n)
	if l.left < 0 {
		l.x.tooLarge = true
		return 0, errBodyTooLarge
	}
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

var errBodyTooLarge = &tollgate.Error{Code: tollgate.ETooLarge, Message: "request body is larger than this route's limit"}

package proxy

import (
	"bufio"
	"io"
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/internal/h1"
)

// parseResponse reads from br the head of a final HTTP/1.1 response to
// req whose body is framed by one Content-Length, or has none (204, 304),
// the way http.ReadResponse reads it, with one allocation for the head's
// text. It returns nil, leaving br as it was, for any other head, which
// http.ReadResponse then reads (or refuses): 1xx, HTTP/1.0, chunked or
// close-delimited bodies, trailers, answers to HEAD, odd status lines.
func parseResponse(fields *h1.Parser, br *bufio.Reader, req *http.Request) *http.Response {
	if req.Method == http.MethodHead {
		return nil
	}
	buf, _ := br.Peek(br.Buffered())
	n := h1.HeadEnd(buf)
	for n == 0 && br.Buffered() < br.Size() {
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return nil
		}
		buf, _ = br.Peek(br.Buffered())
		n = h1.HeadEnd(buf)
	}
	if n <= 0 {
		return nil
	}
	text := string(buf[:n])
	line, rest, _ := strings.Cut(text, "\r\n")
	status, ok := strings.CutPrefix(line, "HTTP/1.1 ")
	if !ok || len(status) < 3 || len(status) > 3 && status[3] != ' ' || !h1.ValidValue(status) {
		return nil
	}
	code := 0
	for i := 0; i < 3; i++ {
		c := status[i]
		if c < '0' || c > '9' {
			return nil
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code > 999 {
		return nil
	}
	h, ok := fields.Fields(rest)
	if !ok {
		return nil
	}
	if _, ok := h["Transfer-Encoding"]; ok {
		return nil
	}
	if _, ok := h["Trailer"]; ok {
		return nil
	}
	res := &http.Response{
		Status: status, StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, Request: req,
	}
	cl := h["Content-Length"]
	bodyless := code == http.StatusNoContent || code == http.StatusNotModified
	switch {
	case bodyless && len(cl) == 0:
	case len(cl) != 1:
		return nil // close-delimited, or lengths net/http reconciles
	default:
		length, ok := h1.ParseLength(h1.TrimOWS(cl[0]))
		if !ok {
			return nil
		}
		if !bodyless {
			res.ContentLength = length
		}
	}
	for _, v := range h["Connection"] {
		if h1.HasToken(v, "close") {
			res.Close = true
			delete(h, "Connection")
			break
		}
	}
	h1.PragmaNoCache(h)
	_, _ = br.Discard(n)
	if res.ContentLength > 0 {
		res.Body = &lengthBody{br: br, left: res.ContentLength}
	}
	return res
}

// lengthBody reads a body of known length from the connection.
type lengthBody struct {
	br   *bufio.Reader
	left int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	switch {
	case b.left == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *lengthBody) Close() error { return nil }

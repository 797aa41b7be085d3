package upstream

import (
	"bufio"
	"bytes"
	"errors"
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

// headBuffer is the size of an upstream connection's read buffer: a
// response head must fit in it to be checked, and a larger one closes its
// connection after the answer.
const headBuffer = 8 << 10

// errMalformedHead is a response head whose framing two parsers could
// read differently: a bare LF or CR, a NUL, obsolete line folding, or
// Content-Length with Transfer-Encoding or more than once.
var errMalformedHead = errors.New("malformed response head")

// checkHead looks at the response head at the start of br without
// consuming it. A head that could be framed in more than one way is an
// error: the answer is refused and its connection closed. keep is false
// when the connection must not be used again after this answer: a 204,
// 304 or 1xx announcing a body (whose bytes may follow it; a 304's length
// may also be the entity's, and closing costs such an answer one new
// connection), or a head too large to check.
func checkHead(br *bufio.Reader) (keep bool, err error) {
	var head []byte
	for n := max(br.Buffered(), 1); ; n = br.Buffered() + 1 {
		if n > br.Size() {
			return false, nil
		}
		if _, err := br.Peek(n); err != nil {
			return false, err
		}
		buf, _ := br.Peek(br.Buffered())
		if end := blankLine(buf); end > 0 {
			head = buf[:end]
			break
		}
	}
	code, lengths, codings, zeroLength := 0, 0, 0, true
	for i, line := 0, head; len(line) > 0; i++ {
		eol := bytes.IndexByte(line, '\n')
		field := line[:eol]
		line = line[eol+1:]
		if len(field) == 0 || field[len(field)-1] != '\r' {
			return false, errMalformedHead // bare LF
		}
		field = field[:len(field)-1]
		if bytes.IndexByte(field, '\r') >= 0 || bytes.IndexByte(field, 0) >= 0 {
			return false, errMalformedHead
		}
		switch {
		case i == 0:
			if len(field) >= 12 && bytes.HasPrefix(field, []byte("HTTP/1.")) {
				for _, c := range field[9:12] {
					code = code*10 + int(c-'0')
				}
			}
		case len(field) == 0: // the blank line
		case field[0] == ' ' || field[0] == '\t':
			return false, errMalformedHead // obsolete line folding
		default:
			name, value, _ := bytes.Cut(field, []byte(":"))
			switch {
			case bytes.EqualFold(name, []byte("Content-Length")):
				lengths++
				zeroLength = string(bytes.Trim(value, " \t")) == "0"
			case bytes.EqualFold(name, []byte("Transfer-Encoding")):
				codings++
			}
		}
	}
	if lengths > 1 || lengths > 0 && codings > 0 {
		return false, errMalformedHead
	}
	bodyless := code < 200 || code == http.StatusNoContent || code == http.StatusNotModified
	if bodyless && (codings > 0 || lengths > 0 && !zeroLength) {
		return false, nil
	}
	return true, nil
}

// blankLine returns the length of the head in buf through its blank line
// (CRLF or a bare LF), or 0 when buf holds no blank line yet.
func blankLine(buf []byte) int {
	for i := 0; i < len(buf); {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return 0
		}
		line := buf[i : i+j]
		i += j + 1
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			return i
		}
	}
	return 0
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

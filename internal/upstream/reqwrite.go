package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/internal/h1"
)

// writeRequest writes req as http.Request.Write does for the requests the
// direct path takes (no trailers; a body of known length, or chunked when
// its length is unknown), and then closes its body. Unlike Request.Write it does
// not sort the headers first: their order carries no meaning, and sorting
// was a tenth of the cost of forwarding a request.
//
// The body is copied through buf when it is not nil.
func writeRequest(w *bufio.Writer, req *http.Request, buf []byte) (err error) {
	if req.Body != nil {
		defer func() {
			if cerr := req.Body.Close(); err == nil && cerr != nil {
				err = cerr
			}
		}()
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if host == "" || strings.ContainsAny(host, " \r\n") {
		return fmt.Errorf("write request: invalid host %q", host)
	}
	uri := req.URL.RequestURI()
	if strings.ContainsAny(uri, " \r\n") || strings.ContainsAny(req.Method, " \r\n") {
		return errors.New("write request: invalid method or path")
	}
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(uri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	if ua, ok := req.Header["User-Agent"]; !ok {
		w.WriteString("User-Agent: Go-http-client/1.1\r\n")
	} else if len(ua) > 0 && ua[0] != "" {
		h1.WriteField(w, "User-Agent", ua[0])
	}
	// A body of length 0 is one of unknown length, as for http.Transport.
	hasBody := req.Body != nil && req.Body != http.NoBody
	chunked := hasBody && req.ContentLength <= 0
	switch {
	case chunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	case hasBody:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(req.ContentLength, 10))
		w.WriteString("\r\n")
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		w.WriteString("Content-Length: 0\r\n")
	}
	if req.Close && !hasToken(req.Header["Connection"], "close") {
		w.WriteString("Connection: close\r\n")
	}
	for k, vs := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vs {
			h1.WriteField(w, k, v)
		}
	}
	w.WriteString("\r\n")
	if !hasBody {
		return nil
	}
	src := &sourceReader{r: req.Body}
	if chunked {
		if _, err := io.CopyBuffer(chunkWriter{w}, src, buf); err != nil {
			return src.cause(err)
		}
		w.WriteString("0\r\n\r\n")
		return nil
	}
	// writerOnly hides the buffered writer's ReadFrom, which would read
	// the body a buffer (4 KiB) at a time: a larger piece goes to the
	// connection in one write.
	n, err := io.CopyBuffer(writerOnly{w}, io.LimitReader(src, req.ContentLength), buf)
	if err != nil {
		return src.cause(err)
	}
	if n != req.ContentLength {
		return &bodyError{fmt.Errorf("%d of its %d bytes", n, req.ContentLength)}
	}
	return nil
}

// streamed reports whether req's body is written by a goroutine of its
// own while the answer is read: a body larger than MaxDirectBody, or of
// unknown length.
func streamed(req *http.Request) bool {
	return req.Body != nil && req.Body != http.NoBody && (req.ContentLength <= 0 || req.ContentLength > MaxDirectBody)
}

// bodyError is a request body that could not be read to its end (the
// client went away, or sent more than its route allows).
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "read request body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// sourceReader remembers an error reading the request body, to tell it
// from an error writing to the connection.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// cause is the error of a failed body copy: the body's own, or the
// connection's.
func (s *sourceReader) cause(err error) error {
	if s.err != nil {
		return &bodyError{s.err}
	}
	return fmt.Errorf("write request body: %w", err)
}

// chunkWriter writes each Write as one chunk and flushes it, so a body
// that trickles in reaches the upstream as it comes, as http.Transport
// sends it.
type chunkWriter struct{ w *bufio.Writer }

func (c chunkWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.w.WriteString(strconv.FormatInt(int64(len(p)), 16))
	c.w.WriteString("\r\n")
	c.w.Write(p)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// hasToken reports whether one of the comma-separated values vs holds
// token, compared case-insensitively.
func hasToken(vs []string, token string) bool {
	for _, v := range vs {
		if h1.HasToken(v, token) {
			return true
		}
	}
	return false
}

// writerOnly is an io.Writer and nothing else.
type writerOnly struct{ io.Writer }

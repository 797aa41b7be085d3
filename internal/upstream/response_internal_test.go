package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/h1"
)

// FuzzParseResponse: every response head the fast parser takes,
// http.ReadResponse reads the same: status, header, length, close, body.
func FuzzParseResponse(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nEtag: \"x\"\r\n\r\n",
		"HTTP/1.1 500\r\ncontent-length: 3\r\nconnection: Close\r\n\r\nbad",
		"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nSet-Cookie: a\r\nset-cookie: b\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
	} {
		f.Add([]byte(seed))
	}
	p := h1.NewParser()
	req := &http.Request{Method: "GET"}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got := parseResponse(p, bufio.NewReader(bytes.NewReader(raw)), req)
		if got == nil {
			return
		}
		want, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), req)
		if err != nil {
			t.Fatalf("fast parser took a head http.ReadResponse refuses (%v): %q", err, raw)
		}
		if got.Status != want.Status || got.StatusCode != want.StatusCode || got.ContentLength != want.ContentLength ||
			got.Close != want.Close || !reflect.DeepEqual(got.Header, want.Header) {
			t.Fatalf("%q: fast %q %d cl=%d close=%v %v; net/http %q %d cl=%d close=%v %v", raw,
				got.Status, got.StatusCode, got.ContentLength, got.Close, got.Header,
				want.Status, want.StatusCode, want.ContentLength, want.Close, want.Header)
		}
		gb, gerr := io.ReadAll(got.Body)
		wb, werr := io.ReadAll(want.Body)
		if !bytes.Equal(gb, wb) || (gerr == nil) != (werr == nil) {
			t.Fatalf("%q: body %q (%v), net/http %q (%v)", raw, gb, gerr, wb, werr)
		}
	})
}

// TestCheckHead: heads that two parsers could frame differently are
// refused; bodyless answers that announce a body close their connection.
func TestCheckHead(t *testing.T) {
	tests := []struct {
		name, head string
		keep       bool
		err        bool
	}{
		{"plain", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true, false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", true, false},
		{"204", "HTTP/1.1 204 No Content\r\n\r\n", true, false},
		{"204 with zero length", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", true, false},
		{"304 keeps the length of the entity", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, false},
		{"204 with a length", "HTTP/1.1 204 No Content\r\nContent-Length: 8\r\n\r\n", false, false},
		{"103 with a length", "HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\n\r\n", false, false},
		{"204 chunked", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", false, false},
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false, true},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", false, true},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false, true},
		{"bare LF in a field", "HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 2\r\n\r\nok", false, true},
		{"bare CR", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok", false, true},
		{"NUL", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n", false, true},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n", false, true},
		{"head larger than the buffer", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", headBuffer) + "\r\n\r\n", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keep, err := checkHead(bufio.NewReaderSize(strings.NewReader(tt.head), headBuffer))
			if keep != tt.keep || (err != nil) != tt.err {
				t.Fatalf("keep %v, err %v; want keep %v, error %v", keep, err, tt.keep, tt.err)
			}
		})
	}
}

package edge

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/h1"
)

// frontSize is how much of a response of unknown length is held before
// its header is sent: a handler that returns within it gets a
// Content-Length, a longer or flushed body is chunked (net/http's 2 KiB).
const frontSize = 2 << 10

var errWriteAfterReturn = errors.New("edge: write after the handler returned")

// response is the http.ResponseWriter of one request. Its header is sent
// at the first write past frontSize, the first flush, or the handler's
// return, framed as net/http would frame it.
type response struct {
	c          *conn
	x          *exchange // the request being answered
	req        *http.Request
	header     http.Header
	head       bool  // a HEAD request: bodies are counted, not sent
	status     int   // the final status; 0 before WriteHeader
	noBody     bool  // the status allows no body
	cl         int64 // the declared Content-Length; -1 when none
	written    int64 // body bytes accepted
	front      int   // bytes held in c.front (counted only, for HEAD)
	headerSent bool
	chunked    bool
	trailers   bool // trailers were announced or set
	closeAfter bool
	done       bool
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.done || w.status != 0 {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInterim(code)
		return
	}
	w.status = code
	w.noBody = code < 200 || code == http.StatusNoContent || code == http.StatusNotModified
	if v := w.header.Get("Content-Length"); v != "" {
		if n, ok := h1.ParseLength(h1.TrimOWS(v)); ok {
			w.cl = n
		} else {
			w.c.srv.opts.ErrorLog.Printf("http: invalid Content-Length of %q", v)
			w.header.Del("Content-Length")
		}
	}
}

// writeInterim sends a 1xx answer with the current header at once.
func (w *response) writeInterim(code int) {
	bw := w.c.bw
	writeStatusLine(bw, code)
	w.writeFields(func(k string) bool { return k == "Content-Length" || k == "Transfer-Encoding" })
	_, _ = bw.WriteString("\r\n")
	_ = bw.Flush()
}

func (w *response) Write(p []byte) (int, error) {
	if w.done {
		return 0, errWriteAfterReturn
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if w.noBody {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.cl >= 0 && w.written > w.cl {
		return 0, http.ErrContentLength
	}
	if !w.headerSent {
		if w.cl < 0 && w.front+len(p) <= frontSize {
			copy(w.c.front[w.front:], p)
			w.front += len(p)
			return len(p), nil
		}
		w.sendHeader(false, p)
	}
	return w.writeBody(p)
}

// writeBody sends p as the body (a chunk when chunked).
func (w *response) writeBody(p []byte) (int, error) {
	if w.head {
		return len(p), nil
	}
	bw := w.c.bw
	if w.chunked {
		var size [16]byte
		_, _ = bw.Write(strconv.AppendInt(size[:0], int64(len(p)), 16))
		_, _ = bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	return n, err
}

// Flush sends the header and every byte written so far, and has the
// connection watched for the client going away.
func (w *response) Flush() { _ = w.FlushError() }

// FlushError is Flush with its error, for http.ResponseController.
func (w *response) FlushError() error {
	if w.done {
		return errWriteAfterReturn
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerSent {
		w.sendHeader(false, nil)
	}
	if !w.x.watchDue.Load() {
		w.c.watch()
	}
	return w.c.bw.Flush()
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.nc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// sendHeader writes the status line and header to the connection's
// buffer, then the bytes held in front. done means the handler returned;
// next is the write that made the header go (sniffed when it is first).
func (w *response) sendHeader(done bool, next []byte) {
	w.headerSent = true
	h := w.header
	first := w.c.front[:w.front]
	if len(first) == 0 {
		first = next
	}
	if w.c.srv.shutdown.Load() || h1.HasToken(h.Get("Connection"), "close") {
		w.closeAfter = true
	}
	if w.x.body != nil {
		if left := w.x.body.unread(); left < 0 || left > maxDiscard {
			w.closeAfter = true
		}
	}
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			w.trailers = true
		}
	}
	if len(h["Trailer"]) > 0 {
		w.trailers = true
	}
	te := h.Get("Transfer-Encoding")
	var setLength int64 = -1
	var contentType string
	if !w.noBody {
		if done && !w.trailers && te == "" && w.cl < 0 && (!w.head || w.front > 0) {
			setLength = int64(w.front)
		}
		if _, ok := h["Content-Type"]; !ok && h.Get("Content-Encoding") == "" && te == "" && len(first) > 0 {
			contentType = http.DetectContentType(first)
		}
		switch {
		case w.head, w.cl >= 0, setLength >= 0:
		case te == "identity":
			w.closeAfter = true
		default:
			w.chunked = true
		}
	}
	if w.cl >= 0 && te != "" && te != "identity" {
		w.cl = -1 // net/http ignores a length next to a transfer coding
		w.chunked = !w.head && !w.noBody
	}
	ownClose := w.closeAfter && !h1.HasToken(h.Get("Connection"), "close")

	bw := w.c.bw
	writeStatusLine(bw, w.status)
	w.writeFields(func(k string) bool {
		switch k {
		case "Transfer-Encoding":
			return true
		case "Content-Length":
			return w.noBody || w.chunked
		case "Content-Type":
			return w.status == http.StatusNotModified
		case "Connection":
			return ownClose
		}
		return strings.HasPrefix(k, http.TrailerPrefix) || w.trailers && w.declared(k)
	})
	if _, ok := h["Date"]; !ok {
		_, _ = bw.Write(w.c.srv.dateHeader(time.Now()))
	}
	if contentType != "" {
		_, _ = bw.WriteString("Content-Type: ")
		_, _ = bw.WriteString(contentType)
		_, _ = bw.WriteString("\r\n")
	}
	if setLength >= 0 {
		var n [20]byte
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.Write(strconv.AppendInt(n[:0], setLength, 10))
		_, _ = bw.WriteString("\r\n")
	}
	if w.chunked {
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if ownClose {
		_, _ = bw.WriteString("Connection: close\r\n")
	}
	_, _ = bw.WriteString("\r\n")
	if w.front > 0 && !w.head {
		_, _ = w.writeBody(w.c.front[:w.front])
	}
	w.front = 0
}

// declared reports whether k is announced in the "Trailer" header.
func (w *response) declared(k string) bool {
	for _, v := range w.header["Trailer"] {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if http.CanonicalHeaderKey(h1.TrimOWS(t)) == k {
				return true
			}
		}
	}
	return false
}

// writeFields writes the header's fields but those skip names, with
// invalid names dropped and line breaks in values made spaces, as
// net/http does.
func (w *response) writeFields(skip func(string) bool) {
	bw := w.c.bw
	for k, vv := range w.header {
		if skip(k) || !h1.ValidName(k) {
			continue
		}
		for _, v := range vv {
			h1.WriteField(bw, k, v)
		}
	}
}

// finish completes the response after the handler returned, discards
// what is left of the request body, and reports whether the connection
// can serve another request.
func (w *response) finish(b *body) bool {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerSent {
		w.sendHeader(true, nil)
	}
	if w.chunked {
		bw := w.c.bw
		_, _ = bw.WriteString("0\r\n")
		w.writeTrailers()
		_, _ = bw.WriteString("\r\n")
	}
	w.done = true
	err := w.c.bw.Flush()
	keep := err == nil && !w.closeAfter
	if !w.head && !w.noBody && w.cl >= 0 && w.written != w.cl {
		keep = false // short of the declared length: the client waits for more
	}
	if b != nil && !b.discard() {
		keep = false
	}
	return keep
}

// writeTrailers writes the announced trailers and those set with
// http.TrailerPrefix.
func (w *response) writeTrailers() {
	bw := w.c.bw
	announced := len(w.header["Trailer"]) > 0
	for k, vv := range w.header {
		name, prefixed := strings.CutPrefix(k, http.TrailerPrefix)
		if !prefixed && !(announced && w.declared(k)) || !h1.ValidName(name) {
			continue
		}
		for _, v := range vv {
			h1.WriteField(bw, name, v)
		}
	}
}

func writeStatusLine(bw *bufio.Writer, code int) {
	_, _ = bw.WriteString("HTTP/1.1 ")
	var n [4]byte
	_, _ = bw.Write(strconv.AppendInt(n[:0], int64(code), 10))
	_ = bw.WriteByte(' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	_, _ = bw.WriteString(text)
	_, _ = bw.WriteString("\r\n")
}

var (
	_ http.ResponseWriter = (*response)(nil)
	_ http.Flusher        = (*response)(nil)
)

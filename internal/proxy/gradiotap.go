package proxy

import (
	"bytes"
	"io"
	"strings"
)

// jsonTap passes a small JSON answer through and hands its bytes to done
// once read to the end (answers over 1 MiB are passed but not handed).
type jsonTap struct {
	io.ReadCloser
	buf    bytes.Buffer
	done   func([]byte)
	called bool
}

func (t *jsonTap) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if t.buf.Len()+n <= 1<<20 {
		t.buf.Write(p[:n])
	} else {
		t.called = true // too large to be an answer the guard reads
	}
	if err == io.EOF && !t.called {
		t.called = true
		t.done(t.buf.Bytes())
	}
	return n, err
}

// sseTap passes an event stream through unchanged and hands each data
// line, with the event name before it, to line. A line over 16 MiB is
// skipped.
type sseTap struct {
	io.ReadCloser
	partial []byte
	skip    bool
	event   string
	line    func(event, data string)
}

func (t *sseTap) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	rest := p[:n]
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			if len(t.partial)+len(rest) > 16<<20 {
				t.partial, t.skip = t.partial[:0], true
			} else if !t.skip {
				t.partial = append(t.partial, rest...)
			}
			break
		}
		if !t.skip {
			t.partial = append(t.partial, rest[:i]...)
			t.handle(strings.TrimSuffix(string(t.partial), "\r"))
		}
		t.partial, t.skip = t.partial[:0], false
		rest = rest[i+1:]
	}
	return n, err
}

func (t *sseTap) handle(line string) {
	switch {
	case line == "":
		t.event = ""
	case strings.HasPrefix(line, "event:"):
		t.event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
	case strings.HasPrefix(line, "data:"):
		t.line(t.event, strings.TrimSpace(strings.TrimPrefix(line, "data:")))
	}
}

package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
)

// usageMode says how an openai response is metered: its usage object is
// read into the exchange's units, and with suppress the usage-only chunk
// that the gateway asked for on the client's behalf is dropped from the
// stream.
type usageMode struct {
	suppress bool
}

// openaiUsage is the OpenAI usage object.
type openaiUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

func (u *openaiUsage) apply(x *exchange) {
	x.units.InputTokens = u.PromptTokens
	x.units.OutputTokens = u.CompletionTokens
}

// wrap replaces res.Body with a reader that meters it.
func (m *usageMode) wrap(res *http.Response, x *exchange) {
	mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	switch mt {
	case "text/event-stream":
		res.Body = &sseReader{rc: res.Body, x: x, suppress: m.suppress}
		if m.suppress {
			// The usage chunk is dropped, so the upstream's length no
			// longer fits what the client gets.
			res.ContentLength = -1
			res.Header.Del("Content-Length")
		}
	case "application/json":
		res.Body = &jsonUsageReader{rc: res.Body, x: x}
	}
}

// maxUsageTail bounds what a JSON response keeps to find its usage: the
// whole body up to this size, then its last bytes (usage comes last).
const maxUsageTail = 64 << 10

// jsonUsageReader passes a JSON body through and, at its end, reads the
// top-level usage object.
type jsonUsageReader struct {
	rc   io.ReadCloser
	x    *exchange
	tail []byte
	done bool
}

func (j *jsonUsageReader) Read(p []byte) (int, error) {
	n, err := j.rc.Read(p)
	if n > 0 {
		j.tail = append(j.tail, p[:n]...)
		if len(j.tail) > 2*maxUsageTail {
			j.tail = append(j.tail[:0], j.tail[len(j.tail)-maxUsageTail:]...)
		}
	}
	if err == io.EOF {
		j.parse()
	}
	return n, err
}

func (j *jsonUsageReader) Close() error {
	j.parse()
	return j.rc.Close()
}

func (j *jsonUsageReader) parse() {
	if j.done {
		return
	}
	j.done = true
	if u, ok := findUsage(j.tail); ok {
		u.apply(j.x)
	}
	j.tail = nil
}

// findUsage decodes the object after the last `"usage":` key of b. A
// quote inside a JSON string is escaped, so the key cannot be forged by
// content.
func findUsage(b []byte) (openaiUsage, bool) {
	key := []byte(`"usage"`)
	for end := len(b); end > 0; {
		i := bytes.LastIndex(b[:end], key)
		if i < 0 {
			break
		}
		rest := bytes.TrimLeft(b[i+len(key):], " \t\r\n")
		if len(rest) > 0 && rest[0] == ':' {
			var u *openaiUsage
			if err := json.NewDecoder(bytes.NewReader(rest[1:])).Decode(&u); err == nil && u != nil {
				return *u, true
			}
			return openaiUsage{}, false
		}
		end = i
	}
	return openaiUsage{}, false
}

// maxEventSize bounds one buffered SSE event.
const maxEventSize = 1 << 20

// sseReader passes an event stream through event by event. It reads the
// usage of chunks that carry one; with suppress it drops the usage-only
// chunk (no choices), so the client gets the stream it asked for. Without
// suppress the bytes pass unchanged as soon as they arrive.
type sseReader struct {
	rc       io.ReadCloser
	x        *exchange
	suppress bool
	pending  []byte // start of an event not yet complete
	out      []byte // complete events ready for the client (suppress)
	off      int    // bytes of out already returned
	err      error
	scratch  []byte
}

func (s *sseReader) Read(p []byte) (int, error) {
	if !s.suppress {
		n, err := s.rc.Read(p)
		s.observe(p[:n])
		if err == io.EOF {
			s.flushPending()
		}
		return n, err
	}
	for s.off == len(s.out) {
		if s.err != nil {
			return 0, s.err
		}
		s.out, s.off = s.out[:0], 0
		if s.scratch == nil {
			s.scratch = make([]byte, 32<<10)
		}
		n, err := s.rc.Read(s.scratch)
		s.pending = append(s.pending, s.scratch[:n]...)
		s.takeEvents()
		if len(s.pending) > maxEventSize || err != nil {
			// An oversized or unterminated event passes as it is.
			s.out = append(s.out, s.pending...)
			s.pending = s.pending[:0]
		}
		if err != nil {
			s.err = err
		}
	}
	n := copy(p, s.out[s.off:])
	s.off += n
	return n, nil
}

func (s *sseReader) Close() error {
	s.flushPending()
	return s.rc.Close()
}

// observe scans passing bytes for complete events carrying usage.
func (s *sseReader) observe(b []byte) {
	if len(b) == 0 {
		return
	}
	s.pending = append(s.pending, b...)
	for {
		end := eventEnd(s.pending)
		if end < 0 {
			break
		}
		s.inspect(s.pending[:end])
		s.pending = append(s.pending[:0], s.pending[end:]...)
	}
	if len(s.pending) > maxEventSize {
		s.pending = s.pending[:0]
	}
}

// takeEvents moves complete events from pending to out, dropping the
// usage-only chunk.
func (s *sseReader) takeEvents() {
	for {
		end := eventEnd(s.pending)
		if end < 0 {
			return
		}
		ev := s.pending[:end]
		if !s.inspect(ev) {
			s.out = append(s.out, ev...)
		}
		s.pending = append(s.pending[:0], s.pending[end:]...)
	}
}

func (s *sseReader) flushPending() {
	if len(s.pending) > 0 && !s.suppress {
		s.inspect(s.pending)
		s.pending = nil
	}
}

// inspect records the usage of an event and reports whether it is a
// usage-only chunk.
func (s *sseReader) inspect(ev []byte) (usageOnly bool) {
	if !bytes.Contains(ev, []byte(`"usage"`)) {
		return false
	}
	var chunk struct {
		Choices []json.RawMessage `json:"choices"`
		Usage   *openaiUsage      `json:"usage"`
	}
	if json.Unmarshal(eventData(ev), &chunk) != nil || chunk.Usage == nil {
		return false
	}
	chunk.Usage.apply(s.x)
	return len(chunk.Choices) == 0
}

// eventEnd returns the index just past the blank line ending the first
// event of b, or -1.
func eventEnd(b []byte) int {
	i := bytes.Index(b, []byte("\n\n"))
	j := bytes.Index(b, []byte("\n\r\n"))
	switch {
	case i < 0 && j < 0:
		return -1
	case j < 0 || (i >= 0 && i < j):
		return i + 2
	default:
		return j + 3
	}
}

// eventData joins the data lines of an event.
func eventData(ev []byte) []byte {
	var data []byte
	for len(ev) > 0 {
		line := ev
		if i := bytes.IndexByte(ev, '\n'); i >= 0 {
			line, ev = ev[:i], ev[i+1:]
		} else {
			ev = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if v, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			v = bytes.TrimPrefix(v, []byte(" "))
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, v...)
		}
	}
	return data
}

package comfytest

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Frame is one websocket message from a ComfyUI server: a text
// message's type and data, or a binary frame (a preview).
type Frame struct {
	Type   string         `json:"type"`
	Data   map[string]any `json:"data"`
	Binary []byte         `json:"-"`
}

// WSClient reads a ComfyUI websocket in the background, for tests of
// anything that serves one (the emulator, or a gateway in front of it).
type WSClient struct {
	tb     testing.TB
	conn   *websocket.Conn
	frames chan Frame
}

// Dial connects to url (http:// or ws://, with its path and query, e.g.
// s.URL+"/ws?clientId=x") with header, and closes with tb.Cleanup.
func Dial(tb testing.TB, url string, header http.Header) *WSClient {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if rest, ok := strings.CutPrefix(url, "http"); ok {
		url = "ws" + rest
	}
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		tb.Fatalf("dial %s: %v", url, err)
	}
	c.SetReadLimit(1 << 24)
	w := &WSClient{tb: tb, conn: c, frames: make(chan Frame, 4096)}
	go w.read()
	tb.Cleanup(func() { _ = c.CloseNow() })
	return w
}

func (w *WSClient) read() {
	defer close(w.frames)
	for {
		typ, data, err := w.conn.Read(context.Background())
		if err != nil {
			return
		}
		f := Frame{Binary: data}
		if typ == websocket.MessageText {
			f = Frame{}
			if err := json.Unmarshal(data, &f); err != nil {
				f.Type = "invalid: " + string(data)
			}
		}
		w.frames <- f
	}
}

// Frames is the channel of frames read; it closes when the socket does.
func (w *WSClient) Frames() <-chan Frame { return w.frames }

// Send writes v as a JSON text message.
func (w *WSClient) Send(v any) {
	w.tb.Helper()
	b, err := json.Marshal(v)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = w.conn.Write(ctx, websocket.MessageText, b)
	}
	if err != nil {
		w.tb.Fatalf("websocket send: %v", err)
	}
}

// Close closes the socket.
func (w *WSClient) Close() { _ = w.conn.Close(websocket.StatusNormalClosure, "") }

// Next returns the next frame, failing tb when the socket closes or
// nothing comes within 20 seconds.
func (w *WSClient) Next() Frame {
	w.tb.Helper()
	select {
	case f, ok := <-w.frames:
		if !ok {
			w.tb.Fatal("websocket closed")
		}
		return f
	case <-time.After(20 * time.Second):
		w.tb.Fatal("no websocket frame in 20s")
	}
	return Frame{}
}

// Until reads frames up to and including the first for which stop is
// true.
func (w *WSClient) Until(stop func(Frame) bool) []Frame {
	w.tb.Helper()
	var got []Frame
	for {
		f := w.Next()
		got = append(got, f)
		if stop(f) {
			return got
		}
	}
}

// Done is true for a prompt's last message, executing {node: null}.
func Done(promptID string) func(Frame) bool {
	return func(f Frame) bool {
		return f.Type == "executing" && f.Data["node"] == nil && f.Data["prompt_id"] == promptID
	}
}

// Kinds names frames: text messages by type, binary frames "preview";
// progress_state is left out.
func Kinds(frames []Frame) []string {
	var out []string
	for _, f := range frames {
		switch {
		case f.Binary != nil:
			out = append(out, "preview")
		case f.Type != "progress_state":
			out = append(out, f.Type)
		}
	}
	return out
}

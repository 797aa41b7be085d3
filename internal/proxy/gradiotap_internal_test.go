package proxy

import (
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestSSETapSeesEveryDataLineAndPassesBytesUnchanged(t *testing.T) {
	stream := "event: generating\r\ndata: [1]\r\n\r\ndata: {\"msg\":\"process_starts\"}\n\n: comment\nevent: complete\ndata: [\"done\"]\n\ndata: tail-without-newline"
	for _, chunked := range []bool{false, true} {
		var seen []string
		var src io.Reader = strings.NewReader(stream)
		if chunked {
			src = iotest.OneByteReader(src)
		}
		tap := &sseTap{ReadCloser: io.NopCloser(src), line: func(event, data string) { seen = append(seen, event+"|"+data) }}
		got, err := io.ReadAll(tap)
		if err != nil || string(got) != stream {
			t.Fatalf("chunked=%v: passed %q (%v), want the stream unchanged", chunked, got, err)
		}
		want := []string{"generating|[1]", `|{"msg":"process_starts"}`, `complete|["done"]`}
		if !slices.Equal(seen, want) {
			t.Errorf("chunked=%v: lines %q, want %q", chunked, seen, want)
		}
	}
}

func TestJSONTapHandsTheWholeAnswer(t *testing.T) {
	var got string
	tap := &jsonTap{ReadCloser: io.NopCloser(iotest.OneByteReader(strings.NewReader(`["/tmp/a.wav"]`))), done: func(b []byte) { got = string(b) }}
	if _, err := io.ReadAll(tap); err != nil || got != `["/tmp/a.wav"]` {
		t.Errorf("done got %q (%v), want the whole answer", got, err)
	}
}

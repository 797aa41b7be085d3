package proxy

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestSSEReader(t *testing.T) {
	const (
		c1    = `data: {"choices":[{"delta":{"content":"a"}}]}`
		c2    = `data: {"choices":[{"delta":{"content":"b"}}],"usage":null}`
		usage = `data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9}}`
		done  = `data: [DONE]`
	)
	for _, nl := range []string{"\n", "\r\n"} {
		ev := func(s string) string { return s + nl + nl }
		stream := ev(": keep-alive") + ev(c1) + ev(c2) + ev(usage) + ev(done)
		for _, tc := range []struct {
			name     string
			suppress bool
			want     string
		}{
			{"suppress", true, ev(": keep-alive") + ev(c1) + ev(c2) + ev(done)},
			{"observe", false, stream},
		} {
			for _, split := range []struct {
				name string
				wrap func(io.Reader) io.Reader
			}{{"one byte at a time", iotest.OneByteReader}, {"half reads", iotest.HalfReader}, {"whole", func(r io.Reader) io.Reader { return r }}} {
				x := &exchange{}
				r := &sseReader{rc: io.NopCloser(split.wrap(strings.NewReader(stream))), x: x, suppress: tc.suppress}
				got, err := io.ReadAll(iotest.OneByteReader(r))
				if err != nil {
					t.Fatal(err)
				}
				_ = r.Close()
				if string(got) != tc.want {
					t.Errorf("%q %s %s: got %q, want %q", nl, tc.name, split.name, got, tc.want)
				}
				if x.units.InputTokens != 5 || x.units.OutputTokens != 9 {
					t.Errorf("%q %s %s: units %+v", nl, tc.name, split.name, x.units)
				}
			}
		}
	}
}

func TestFindUsage(t *testing.T) {
	for _, tc := range []struct {
		body     string
		in, out  int64
		wantFind bool
	}{
		{`{"usage":{"prompt_tokens":3,"completion_tokens":4}}`, 3, 4, true},
		{`{"choices":[{"message":{"content":"the \"usage\": {\"prompt_tokens\": 99}"}}],"usage" : {"prompt_tokens":3}}`, 3, 0, true},
		{`{"data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":8,"total_tokens":8}}`, 8, 0, true},
		{`{"object":"usage"}`, 0, 0, false},
		{`{"usage":null}`, 0, 0, false},
		{`not json`, 0, 0, false},
	} {
		u, ok := findUsage([]byte(tc.body))
		if ok != tc.wantFind || u.PromptTokens != tc.in || u.CompletionTokens != tc.out {
			t.Errorf("%s: %+v %v", tc.body, u, ok)
		}
	}
}

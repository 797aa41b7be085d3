package h1_test

import (
	"bufio"
	"net/textproto"
	"reflect"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/h1"
)

func TestHeadEnd(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody", 27},
		{"GET / HTTP/1.1\r\nHost: a\r\n", 0},
		{"GET / HTTP/1.1\nHost: a\n\n", -1},
		{"GET / HTTP/1.1\r\nHost: a\n\r\n", 0},
		{"", 0},
	} {
		if got := h1.HeadEnd([]byte(tc.in)); got != tc.want {
			t.Errorf("HeadEnd(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestFieldsAsTextproto: the fields a head's lines hold read as
// net/textproto reads them; lines textproto refuses are refused.
func TestFieldsAsTextproto(t *testing.T) {
	p := h1.NewParser()
	for _, lines := range []string{
		"Host: a\r\ncontent-type: text/plain\r\nX-Custom-header:  v \t\r\n\r\n",
		"accept: a\r\nAccept: b\r\nx-a: 1\r\n\r\n",
		"X-Empty:\r\nWWW-AUTHENTICATE: Bearer\r\n\r\n",
		"\r\n",
	} {
		got, ok := p.Fields(lines)
		want, err := textproto.NewReader(bufio.NewReader(strings.NewReader(lines))).ReadMIMEHeader()
		if !ok || err != nil {
			t.Fatalf("%q: ok=%v, textproto err %v", lines, ok, err)
		}
		if len(want) == 0 {
			want = nil
		}
		if len(got) == 0 {
			got = nil
		}
		if !reflect.DeepEqual(map[string][]string(got), map[string][]string(want)) {
			t.Errorf("%q: %v, textproto %v", lines, got, want)
		}
	}
	for _, bad := range []string{"NoColon\r\n\r\n", "Bad Name: v\r\n\r\n", "X : v\r\n\r\n", "X: a\x00b\r\n\r\n", ": v\r\n\r\n"} {
		if _, ok := p.Fields(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestHasToken(t *testing.T) {
	for _, tc := range []struct {
		v, token string
		want     bool
	}{
		{"close", "close", true},
		{"keep-alive, Close ", "close", true},
		{"\tCLOSE\t,x", "close", true},
		{"closed", "close", false},
		{"", "close", false},
		{" , ", "", false},                       // an empty token is in no list
		{"cloſe", "close", false},                // a long s is not an s
		{"\u212aeep-alive", "keep-alive", false}, // nor a Kelvin sign a k
	} {
		if got := h1.HasToken(tc.v, tc.token); got != tc.want {
			t.Errorf("HasToken(%q, %q) = %v, want %v", tc.v, tc.token, got, tc.want)
		}
	}
}

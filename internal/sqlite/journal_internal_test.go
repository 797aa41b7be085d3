package sqlite

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadSegment(t *testing.T) {
	const a, b = `{"id":"a","start":1}` + "\n", `{"id":"b","start":2,"user":"u\u0000"}` + "\n"
	zeros := func(n int) string { return strings.Repeat("\x00", n) }
	for _, tc := range []struct {
		name    string
		data    string
		want    []string
		wantErr bool
	}{
		{name: "Empty"},
		{name: "Lines", data: a + b, want: []string{"a", "b"}},
		{name: "CutLastLine", data: a + b + `{"id":"c","st`, want: []string{"a", "b"}},
		{name: "OnlyZeros", data: zeros(4096)},
		{name: "LinesThenZeros", data: a + b + zeros(4000), want: []string{"a", "b"}},
		{name: "CutLineThenZeros", data: a + `{"id":"c","st` + zeros(4000), want: []string{"a"}},
		// A copy cut short may have written the end of a line before its
		// middle.
		{name: "LineWithAHole", data: a + `{"id":"c","st` + zeros(5) + "}\n" + zeros(4000), want: []string{"a"}},
		{name: "MalformedBeforeLast", data: a + "garbage\n" + b + zeros(100), wantErr: true},
		{name: "MalformedBeforeACutLine", data: a + "garbage\n" + `{"id":"c"` + zeros(100), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db-open.1.journal")
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			recs, err := readSegment(path)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("readSegment = %d records, nil; want an error", len(recs))
				}
				return
			}
			var ids []string
			for _, r := range recs {
				ids = append(ids, r.RequestID)
			}
			if err != nil || !slices.Equal(ids, tc.want) {
				t.Fatalf("readSegment = %v, %v; want %v", ids, err, tc.want)
			}
		})
	}
}

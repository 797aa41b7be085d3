package demo_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/demo"
)

func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestEcho(t *testing.T) {
	srv := httptest.NewServer((&demo.Echo{}).Handler())
	defer srv.Close()

	t.Run("chat answers the last user message with usage", func(t *testing.T) {
		resp := post(t, srv.URL+"/v1/chat/completions", `{"model":"demo-echo","messages":[{"role":"user","content":"hello there gateway"}]}`)
		var out struct {
			Choices []struct{ Message struct{ Content string } }
			Usage   struct{ PromptTokens, CompletionTokens int } `json:"usage"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		if out.Choices[0].Message.Content != "hello there gateway" {
			t.Fatalf("content %q", out.Choices[0].Message.Content)
		}
	})
	t.Run("stream sends a chunk per word, usage only when asked", func(t *testing.T) {
		for _, include := range []bool{false, true} {
			body := `{"model":"demo-echo","stream":true,"messages":[{"role":"user","content":"one two three"}]`
			if include {
				body += `,"stream_options":{"include_usage":true}`
			}
			resp := post(t, srv.URL+"/v1/chat/completions", body+"}")
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Fatalf("content type %q", ct)
			}
			var events []string
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
					events = append(events, d)
				}
			}
			want := 5 // three words, stop, [DONE]
			if include {
				want = 6
			}
			if len(events) != want || events[len(events)-1] != "[DONE]" {
				t.Fatalf("include_usage=%v: events %q", include, events)
			}
			if include != strings.Contains(events[len(events)-2], `"usage"`) {
				t.Fatalf("include_usage=%v: usage chunk %q", include, events[len(events)-2])
			}
		}
	})
	t.Run("bad JSON is a 400", func(t *testing.T) {
		if resp := post(t, srv.URL+"/v1/chat/completions", `{`); resp.StatusCode != 400 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("embeddings are deterministic", func(t *testing.T) {
		read := func() string {
			var b bytes.Buffer
			_, _ = b.ReadFrom(post(t, srv.URL+"/v1/embeddings", `{"model":"demo-echo","input":"abc"}`).Body)
			return b.String()
		}
		if a, b := read(), read(); a != b || !strings.Contains(a, `"embedding"`) {
			t.Fatalf("embeddings %q vs %q", a, b)
		}
	})
}

func TestColorize(t *testing.T) {
	srv := httptest.NewServer((&demo.Colorize{}).Handler())
	defer srv.Close()
	gray := image.NewGray(image.Rect(0, 0, 4, 3))
	gray.Set(1, 1, color.Gray{Y: 200})
	var in bytes.Buffer
	if err := png.Encode(&in, gray); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(srv.URL+"/colorize", "image/png", &in)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := png.Decode(resp.Body)
	if err != nil {
		t.Fatalf("answer is not a PNG: %v", err)
	}
	if out.Bounds() != gray.Bounds() {
		t.Fatalf("bounds %v, want %v", out.Bounds(), gray.Bounds())
	}
	r, g, b, _ := out.At(1, 1).RGBA()
	if r <= g || g <= b {
		t.Fatalf("pixel not tinted: %d %d %d", r>>8, g>>8, b>>8)
	}
	bad, err := http.Post(srv.URL+"/colorize", "image/png", strings.NewReader("not an image"))
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	if bad.StatusCode != 400 {
		t.Fatalf("garbage got %d, want 400", bad.StatusCode)
	}
}

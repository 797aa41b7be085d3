package comfytest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tollgate/tollgate/internal/comfytest"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// frame is one websocket message: a text message's type and data, or a
// binary frame.
type frame struct {
	Type   string
	Data   map[string]any
	Binary []byte
}

type wsClient struct {
	t      *testing.T
	c      *websocket.Conn
	frames chan frame
}

// dial connects to /ws?clientId=id and reads frames in the background.
func dial(t *testing.T, s *comfytest.Server, path string) *wsClient {
	t.Helper()
	ctx := ctxT(t)
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+path, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	c.SetReadLimit(1 << 22)
	w := &wsClient{t: t, c: c, frames: make(chan frame, 1024)}
	go func() {
		defer close(w.frames)
		for {
			typ, data, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if typ == websocket.MessageBinary {
				w.frames <- frame{Binary: data}
				continue
			}
			var f frame
			if err := json.Unmarshal(data, &f); err != nil {
				t.Errorf("text frame %q: %v", data, err)
			}
			w.frames <- f
		}
	}()
	t.Cleanup(func() { _ = c.CloseNow() })
	return w
}

// next returns the next frame.
func (w *wsClient) next() frame {
	w.t.Helper()
	select {
	case f, ok := <-w.frames:
		if !ok {
			w.t.Fatal("websocket closed")
		}
		return f
	case <-time.After(20 * time.Second):
		w.t.Fatal("no websocket frame in 20s")
	}
	return frame{}
}

// until reads frames up to and including the first for which stop is true.
func (w *wsClient) until(stop func(frame) bool) []frame {
	w.t.Helper()
	var got []frame
	for {
		f := w.next()
		got = append(got, f)
		if stop(f) {
			return got
		}
	}
}

// promptDone is the last message of a prompt: executing {node: null}.
func promptDone(id string) func(frame) bool {
	return func(f frame) bool {
		return f.Type == "executing" && f.Data["node"] == nil && f.Data["prompt_id"] == id
	}
}

func postJSON(t *testing.T, url string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	// No Content-Type, as the SDK posts.
	resp, err := http.Post(url, "", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("GET %s: %s: %v", url, raw, err)
		}
	}
	return resp.StatusCode
}

func upload(t *testing.T, s *comfytest.Server, name, subfolder string, data []byte) map[string]any {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	fw, _ := mw.CreateFormFile("image", name)
	_, _ = fw.Write(data)
	_ = mw.WriteField("subfolder", subfolder)
	_ = mw.Close()
	resp, err := http.Post(s.URL+"/upload/image", mw.FormDataContentType(), &b)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("upload: status %d, %v", resp.StatusCode, err)
	}
	return out
}

// ddcolor is a DDColor workflow: LoadImage → DDColor_Colorize → SaveImage.
func ddcolor(image, prefix string, size int) map[string]any {
	return map[string]any{
		"1": map[string]any{"class_type": "LoadImage", "inputs": map[string]any{"image": image}},
		"2": map[string]any{"class_type": "DDColor_Colorize", "inputs": map[string]any{"image": []any{"1", 0}, "model_input_size": size, "checkpoint": "ddcolor_paper_tiny.pth"}},
		"3": map[string]any{"class_type": "SaveImage", "inputs": map[string]any{"images": []any{"2", 0}, "filename_prefix": prefix}},
	}
}

// submit posts a prompt for client and returns its prompt_id.
func submit(t *testing.T, s *comfytest.Server, client string, graph map[string]any) string {
	t.Helper()
	code, out := postJSON(t, s.URL+"/prompt", map[string]any{"prompt": graph, "client_id": client})
	id, _ := out["prompt_id"].(string)
	if code != 200 || id == "" {
		t.Fatalf("POST /prompt: %d %v", code, out)
	}
	return id
}

// setup starts a held emulator with an uploaded image, "old.png".
func setup(t *testing.T, opts comfytest.Options) *comfytest.Server {
	t.Helper()
	s := comfytest.New(t, opts)
	upload(t, s, "old.png", "", comfytest.PNG(40, 24))
	return s
}

// kinds names the frames: text types, "preview" for binary frames,
// without progress_state.
func kinds(frames []frame) []string {
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

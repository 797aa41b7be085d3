package comfytest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/comfytest"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type frame = comfytest.Frame

// dial connects to the emulator's websocket at path.
func dial(t *testing.T, s *comfytest.Server, path string) *comfytest.WSClient {
	t.Helper()
	return comfytest.Dial(t, s.URL+path, nil)
}

func promptDone(id string) func(frame) bool { return comfytest.Done(id) }

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

// ddcolor is comfytest.DDColorPrompt with the tiny checkpoint.
func ddcolor(image, prefix string, size int) map[string]any {
	g := comfytest.DDColorPrompt(image, prefix, size)
	g["2"].(map[string]any)["inputs"].(map[string]any)["checkpoint"] = "ddcolor_paper_tiny.pth"
	return g
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

func kinds(frames []frame) []string { return comfytest.Kinds(frames) }

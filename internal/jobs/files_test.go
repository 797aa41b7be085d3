package jobs_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"
)

// pngURI returns a w×h PNG as a data: URI.
func pngURI(t *testing.T, w, h int) string {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
}

func TestFileInputs(t *testing.T) { onEngines(t, testFileInputs) }

func testFileInputs(t *testing.T, engine string) {
	var e *env
	e = setupOn(t, engine, `
jobs:
  - name: photo/restore
    backend: http
    upstreams: [UPSTREAM]
    path: /run
    inputs:
      photo: {type: image, required: true, max_size: 64KiB}
      prompt: {type: string}
    rules:
      - expr: 'claims.plan == "pro" || media.photo.width <= 32'
        message: "free plan: photos up to 32 px wide"
`, echo(func() *clock { return e.clock }))
	small := pngURI(t, 16, 16)
	p := e.create(t, "alice", "photo/restore", map[string]any{"photo": small}, "Prefer", "wait")
	got, _ := p.Output.(map[string]any)["got"].(map[string]any)
	if p.Status != "succeeded" || got["photo"] != small {
		t.Errorf("prediction %s; the upstream got %.40v, want the data: URI", p.Status, got["photo"])
	}
	big := pngURI(t, 64, 64)
	if p := e.create(t, "pro", "photo/restore", map[string]any{"photo": big}, "Prefer", "wait"); p.Status != "succeeded" {
		t.Errorf("pro prediction with a 64 px photo: %s", p.Status)
	}
	t.Run("uploads", func(t *testing.T) {
		raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(small, "data:image/png;base64,"))
		file := upload(t, e, "alice", raw)
		if file.ContentType != "image/png" || file.Size != int64(len(raw)) || !strings.HasPrefix(file.URLs["get"], e.URL+"/v1/files/") {
			t.Fatalf("upload %+v", file)
		}
		p := e.create(t, "alice", "photo/restore", map[string]any{"photo": file.URLs["get"]}, "Prefer", "wait")
		got, _ := p.Output.(map[string]any)["got"].(map[string]any)
		if p.Status != "succeeded" || got["photo"] != small {
			t.Errorf("prediction from an upload: %s; the upstream got %.40v, want the file as a data: URI", p.Status, got["photo"])
		}
		status, _, b := e.call(t, "bob", "POST", "/v1/models/photo/restore/predictions", map[string]any{"input": map[string]any{"photo": file.URLs["get"]}})
		if status != 422 || !strings.Contains(string(b), "input.photo: no such file of yours") {
			t.Errorf("bob using alice's upload: %d %s", status, b)
		}
		if status, _, _ := e.call(t, "bob", "GET", "/v1/files/"+file.ID, nil); status != 404 {
			t.Errorf("bob reading alice's upload: %d, want 404", status)
		}
		if status, _, _ := e.call(t, "bob", "DELETE", "/v1/files/"+file.ID, nil); status != 404 {
			t.Errorf("bob deleting alice's upload: %d, want 404", status)
		}
		if status, _, _ := e.call(t, "alice", "GET", "/v1/files/"+file.ID, nil); status != 200 {
			t.Errorf("alice reading her upload: %d", status)
		}
		if status, _, _ := e.call(t, "alice", "DELETE", "/v1/files/"+file.ID, nil); status != 204 {
			t.Errorf("alice deleting her upload: %d", status)
		}
		if status, _, _ := e.call(t, "alice", "GET", "/v1/files/"+file.ID, nil); status != 404 {
			t.Errorf("a deleted upload: %d, want 404", status)
		}
		old := upload(t, e, "alice", raw)
		e.clock.Advance(25 * time.Hour)
		if status, _, _ := e.call(t, "alice", "GET", "/v1/files/"+old.ID, nil); status != 404 {
			t.Errorf("an upload after 24 h: %d, want 404", status)
		}
	})
	huge := "data:image/png;base64," + base64.StdEncoding.EncodeToString(append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 70<<10)...))
	for _, c := range []struct {
		name   string
		photo  any
		status int
		want   string
	}{
		{"a rule on the image's width", big, 403, "free plan: photos up to 32 px wide"},
		{"not an image", "data:image/png;base64," + base64.StdEncoding.EncodeToString([]byte("hello, just text")), 422, "input.photo: the content is text/plain; charset=utf-8, not an image"},
		{"a URL", "https://example.com/cat.png", 422, "input.photo: URLs are not fetched"},
		{"too large", huge, 422, "input.photo: larger than 64KiB"},
		{"not base64", "data:image/png,abc", 422, "input.photo: want a base64 data: URI"},
		{"not a string", 5, 422, "input.photo: want a data: URI"},
	} {
		status, _, b := e.call(t, "alice", "POST", "/v1/models/photo/restore/predictions", map[string]any{"input": map[string]any{"photo": c.photo}})
		if status != c.status || !strings.Contains(string(b), c.want) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, status, b, c.status, c.want)
		}
	}
}

type uploaded struct {
	ID          string            `json:"id"`
	ContentType string            `json:"content_type"`
	Size        int64             `json:"size"`
	URLs        map[string]string `json:"urls"`
}

// upload posts data to /v1/files as user, as the replicate clients do.
func upload(t *testing.T, e *env, user string, data []byte) uploaded {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("content", "photo.png")
	fw.Write(data)
	mw.WriteField("metadata", `{"kind":"test"}`)
	mw.Close()
	req, _ := http.NewRequest("POST", e.URL+"/v1/files", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("X-Test-User", user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var f uploaded
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &f) != nil {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	return f
}

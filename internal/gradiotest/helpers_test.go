package gradiotest_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/gradiotest"
)

// sseEvent is one server-sent event: its name (empty for "message") and
// data.
type sseEvent struct {
	Name, Data string
}

// JSON decodes the data of a queue/data message.
func (e sseEvent) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(e.Data), &m); err != nil {
		t.Fatalf("event data %q: %v", e.Data, err)
	}
	return m
}

type sseStream struct {
	resp   *http.Response
	events chan sseEvent
}

// openSSE GETs url and reads its event stream in the background.
func openSSE(t *testing.T, url string, header http.Header) *sseStream {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s: %s %q %s", url, resp.Status, resp.Header.Get("Content-Type"), b)
	}
	s := &sseStream{resp: resp, events: make(chan sseEvent, 256)}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Data != "" || ev.Name != "" {
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.Name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	t.Cleanup(s.Close)
	return s
}

// Next returns the next event; it fails t when the stream ends or nothing
// arrives within 10 seconds.
func (s *sseStream) Next(t *testing.T) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("the event stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 seconds")
	}
	return sseEvent{}
}

// Msg returns the next queue/data message.
func (s *sseStream) Msg(t *testing.T) map[string]any {
	t.Helper()
	return s.Next(t).JSON(t)
}

// Until returns the next message named msg, skipping others.
func (s *sseStream) Until(t *testing.T, msg string) map[string]any {
	t.Helper()
	for {
		if m := s.Msg(t); m["msg"] == msg {
			return m
		}
	}
}

// Ended waits for the server to end the stream.
func (s *sseStream) Ended(t *testing.T) {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if ok {
			t.Fatalf("event %+v where the stream should end", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end within 10 seconds")
	}
}

func (s *sseStream) Close() { s.resp.Body.Close() }

// postJSON POSTs body and returns the status and the decoded answer.
func postJSON(t *testing.T, url string, body any, header http.Header) (int, any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out any
	if json.Unmarshal(raw, &out) != nil {
		out = string(raw)
	}
	return resp.StatusCode, out
}

// upload stores content through /gradio_api/upload and returns its path.
func upload(t *testing.T, srv *gradiotest.Server, name string, content []byte) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("files", name)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(content)
	mw.Close()
	resp, err := http.Post(srv.URL+"/gradio_api/upload", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var paths []string
	if err := json.NewDecoder(resp.Body).Decode(&paths); err != nil || resp.StatusCode != http.StatusOK || len(paths) != 1 {
		t.Fatalf("upload: %s %v %v", resp.Status, paths, err)
	}
	return paths[0]
}

func fileData(path string) map[string]any {
	return map[string]any{"path": path, "meta": map[string]any{"_type": "gradio.FileData"}}
}

// join queues a /generate_audio call in session and returns its event id.
func join(t *testing.T, srv *gradiotest.Server, session, text, prompt string, header http.Header) string {
	t.Helper()
	status, out := postJSON(t, srv.URL+"/gradio_api/queue/join", map[string]any{
		"data":         []any{text, fileData(prompt), "zero-shot", 1.0},
		"event_data":   nil,
		"fn_index":     0,
		"trigger_id":   5,
		"session_hash": session,
	}, header)
	m, _ := out.(map[string]any)
	id, _ := m["event_id"].(string)
	if status != http.StatusOK || id == "" {
		t.Fatalf("queue/join: %d %v", status, out)
	}
	return id
}

// get fetches url and returns the status, headers and body.
func get(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// multipartWAV writes a multipart body with one prompt WAV in "files" and
// returns its content type.
func multipartWAV(body *bytes.Buffer) string {
	mw := multipart.NewWriter(body)
	fw, _ := mw.CreateFormFile("files", "prompt.wav")
	fw.Write(promptWAV())
	mw.Close()
	return mw.FormDataContentType()
}

func promptWAV() []byte { return gradiotest.SineWAV(16000, 16000, 220) }

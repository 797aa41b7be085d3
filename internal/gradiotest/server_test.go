package gradiotest_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/gradiotest"
)

// config fetches /config with header and returns it decoded.
func config(t *testing.T, base string, header http.Header) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/config", nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/config: %s %v", base, resp.Status, err)
	}
	return c
}

func TestConfigRoot(t *testing.T) {
	t.Parallel()
	fwd := http.Header{"X-Forwarded-Host": {"gw.example.com, inner"}, "X-Forwarded-Proto": {"https"}}
	for _, c := range []struct {
		name   string
		opts   gradiotest.Options
		header http.Header
		want   func(srv *gradiotest.Server) string
	}{
		{"the request's own URL", gradiotest.Options{}, nil,
			func(s *gradiotest.Server) string { return s.URL }},
		{"X-Forwarded-Host and X-Forwarded-Proto", gradiotest.Options{}, fwd,
			func(*gradiotest.Server) string { return "https://gw.example.com" }},
		{"root_path under a forwarded host", gradiotest.Options{RootPath: "/apps/tts"}, fwd,
			func(*gradiotest.Server) string { return "https://gw.example.com/apps/tts" }},
		{"root_path on the request's URL", gradiotest.Options{RootPath: "/apps/tts"}, nil,
			func(s *gradiotest.Server) string { return s.URL + "/apps/tts" }},
		{"a full-URL root_path wins over headers", gradiotest.Options{RootPath: "https://tts.example.org/x/"}, fwd,
			func(*gradiotest.Server) string { return "https://tts.example.org/x" }},
		{"a mount path", gradiotest.Options{MountPath: "/cosy"}, nil,
			func(s *gradiotest.Server) string { return s.URL }},
		{"a mount path under a forwarded host", gradiotest.Options{MountPath: "/cosy"}, fwd,
			func(*gradiotest.Server) string { return "https://gw.example.com/cosy" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := gradiotest.New(t, c.opts)
			got := config(t, srv.URL, c.header)
			if got["root"] != c.want(srv) {
				t.Errorf("root %v, want %s", got["root"], c.want(srv))
			}
			if got["protocol"] != "sse_v3" || got["api_prefix"] != "/gradio_api" {
				t.Errorf("protocol %v api_prefix %v", got["protocol"], got["api_prefix"])
			}
		})
	}

	t.Run("output file URLs use the root the joining request saw", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{RootPath: "/apps/tts"})
		prompt := upload(t, srv, "prompt.wav", promptWAV())
		join(t, srv, "s", "text", prompt, fwd)
		m := openSSE(t, queueData(srv, "s"), nil).Until(t, "process_completed")
		file := m["output"].(map[string]any)["data"].([]any)[0].(map[string]any)
		want := "https://gw.example.com/apps/tts/gradio_api/file=" + file["path"].(string)
		if file["url"] != want {
			t.Errorf("url %v, want %s", file["url"], want)
		}
	})

	t.Run("outside the mount path there is nothing", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{MountPath: "/cosy"})
		if status, _, _ := get(t, strings.TrimSuffix(srv.URL, "/cosy")+"/config"); status != http.StatusNotFound {
			t.Errorf("/config outside the mount: %d", status)
		}
	})
}

func TestInfo(t *testing.T) {
	t.Parallel()
	srv := gradiotest.New(t, gradiotest.Options{})
	status, _, body := get(t, srv.URL+"/gradio_api/info")
	var info struct {
		Named map[string]struct {
			Parameters []struct {
				Label         string
				ParameterName string `json:"parameter_name"`
				HasDefault    bool   `json:"parameter_has_default"`
				Type          map[string]any
				PythonType    struct{ Type string } `json:"python_type"`
				Component     string
				ExampleInput  any `json:"example_input"`
			}
			Returns []struct {
				Component  string
				PythonType struct{ Type string } `json:"python_type"`
			}
		} `json:"named_endpoints"`
	}
	if err := json.Unmarshal(body, &info); err != nil || status != http.StatusOK {
		t.Fatalf("info: %d %v", status, err)
	}
	ga := info.Named["/generate_audio"]
	var got []string
	for _, p := range ga.Parameters {
		if p.Label == "" || p.ExampleInput == nil || p.Type == nil {
			t.Errorf("parameter %+v lacks label, type or example", p)
		}
		got = append(got, p.ParameterName+" "+p.Component+" "+p.PythonType.Type)
	}
	want := []string{"text Textbox str", "prompt_audio Audio filepath", "mode Radio Literal['zero-shot', 'cross-lingual', 'instruct']", "speed Slider float"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("parameters %q, want %q", got, want)
	}
	if ga.Parameters[1].HasDefault || !ga.Parameters[0].HasDefault {
		t.Errorf("only prompt_audio is required: %+v", ga.Parameters)
	}
	if len(ga.Returns) != 1 || ga.Returns[0].Component != "Audio" || ga.Returns[0].PythonType.Type != "filepath" {
		t.Errorf("returns %+v", ga.Returns)
	}
	if _, ok := info.Named["/normalize_text"]; !ok {
		t.Error("no /normalize_text")
	}
}

func TestFiles(t *testing.T) {
	t.Parallel()

	t.Run("an upload is served back; the same content from anyone gets the same path", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{})
		wav := promptWAV()
		p := upload(t, srv, "my voice.wav", wav)
		if !strings.HasPrefix(p, srv.Dir+string(filepath.Separator)) || filepath.Base(p) != "my voice.wav" {
			t.Errorf("path %s, want <Dir>/<hash>/my voice.wav", p)
		}
		status, h, body := get(t, srv.URL+"/gradio_api/file="+url.PathEscape(p))
		if status != http.StatusOK || !bytes.Equal(body, wav) || h.Get("Content-Type") != "audio/wav" {
			t.Errorf("GET file=: %d %q, %d bytes", status, h.Get("Content-Type"), len(body))
		}
		if again := upload(t, srv, "my voice.wav", wav); again != p {
			t.Errorf("same content stored at %s and %s", p, again)
		}
		if ups := srv.Uploads(); len(ups) != 2 || ups[0].Size != int64(len(wav)) {
			t.Errorf("uploads %+v", ups)
		}
	})

	t.Run("files outside the app's dir are refused", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{})
		p := upload(t, srv, "a.wav", promptWAV())
		outside := filepath.Join(t.TempDir(), "secret.wav")
		os.WriteFile(outside, promptWAV(), 0o644)
		link := filepath.Join(filepath.Dir(p), "link.wav")
		if err := os.Symlink(outside, link); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{
			outside,
			link,
			filepath.Dir(p),
			filepath.Join(filepath.Dir(p), "..", "..", filepath.Base(outside)),
			srv.Dir + "/../" + filepath.Base(srv.Dir) + "-x/a.wav",
			filepath.Join(srv.Dir, "missing.wav"),
			"/etc/passwd",
			"http://example.com/a.wav",
		} {
			status, _, body := get(t, srv.URL+"/gradio_api/file="+bad)
			if status != http.StatusForbidden || !strings.Contains(string(body), "File not allowed") {
				t.Errorf("GET file=%s: %d %s, want 403", bad, status, body)
			}
		}
	})

	t.Run("other types are sent as attachments", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{})
		p := upload(t, srv, "page.html", []byte("<script>alert(1)</script>"))
		_, h, _ := get(t, srv.URL+"/gradio_api/file="+p)
		if h.Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(h.Get("Content-Disposition"), "attachment") {
			t.Errorf("html served as %q %q", h.Get("Content-Type"), h.Get("Content-Disposition"))
		}
	})

	t.Run("uploads must be multipart; odd names are cleaned", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{})
		status, _ := postJSON(t, srv.URL+"/gradio_api/upload", map[string]any{"files": "x"}, nil)
		if status != http.StatusBadRequest {
			t.Errorf("JSON upload: %d", status)
		}
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("files", "../../etc/x$(rm).wav")
		fw.Write([]byte("x"))
		mw.Close()
		resp, err := http.Post(srv.URL+"/gradio_api/upload", mw.FormDataContentType(), &body)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var paths []string
		json.NewDecoder(resp.Body).Decode(&paths)
		if len(paths) != 1 || filepath.Base(paths[0]) != "x(rm).wav" || filepath.Dir(filepath.Dir(paths[0])) != srv.Dir {
			t.Errorf("paths %v", paths)
		}
	})
}

func TestSimpleAPI(t *testing.T) {
	t.Parallel()

	t.Run("call then stream: complete carries the output data", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{})
		prompt := upload(t, srv, "prompt.wav", promptWAV())
		status, out := postJSON(t, srv.URL+"/gradio_api/call/generate_audio", map[string]any{
			"data": []any{"abcd", fileData(prompt), "instruct", 0.5},
		}, nil)
		id, _ := out.(map[string]any)["event_id"].(string)
		if status != http.StatusOK || id == "" {
			t.Fatalf("call: %d %v", status, out)
		}
		s := openSSE(t, srv.URL+"/gradio_api/call/generate_audio/"+id, nil)
		ev := s.Next(t)
		var data []map[string]any
		if ev.Name != "complete" || json.Unmarshal([]byte(ev.Data), &data) != nil || len(data) != 1 {
			t.Fatalf("event %+v", ev)
		}
		_, _, wav := get(t, data[0]["url"].(string))
		if secs, err := gradiotest.WAVSeconds(wav); err != nil || secs < 0.799 || secs > 0.801 {
			t.Errorf("audio %.3f s %v, want 0.8 (4 characters at speed 0.5)", secs, err)
		}
		s.Ended(t)
		if e := srv.Executions(); len(e) != 1 || e[0].SessionHash != id {
			t.Errorf("without a session_hash the event is its own session: %+v", e)
		}
	})

	t.Run("a generator streams whole values; an error is event error", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{})
		_, out := postJSON(t, srv.URL+"/gradio_api/call/normalize_text", map[string]any{"data": []any{"A B"}}, nil)
		s := openSSE(t, srv.URL+"/gradio_api/call/normalize_text/"+out.(map[string]any)["event_id"].(string), nil)
		var got []string
		for _, want := range []string{"generating", "generating", "complete"} {
			ev := s.Next(t)
			if ev.Name != want {
				t.Fatalf("event %+v, want %s", ev, want)
			}
			got = append(got, ev.Data)
		}
		if strings.Join(got, " ") != `["a"] ["a b"] ["a b"]` {
			t.Errorf("data %v", got)
		}
		_, out = postJSON(t, srv.URL+"/gradio_api/call/generate_audio", map[string]any{"data": []any{"x", nil, "zero-shot", 1}}, nil)
		ev := openSSE(t, srv.URL+"/gradio_api/call/generate_audio/"+out.(map[string]any)["event_id"].(string), nil).Next(t)
		if ev.Name != "error" || !strings.Contains(ev.Data, "prompt audio") {
			t.Errorf("event %+v", ev)
		}
	})

	t.Run("unknown endpoints and direct runs are refused", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{})
		if status, _ := postJSON(t, srv.URL+"/gradio_api/call/nope", map[string]any{"data": []any{}}, nil); status != http.StatusInternalServerError {
			t.Errorf("unknown api_name: %d", status)
		}
		if status, _ := postJSON(t, srv.URL+"/gradio_api/run/generate_audio", map[string]any{"data": []any{}}, nil); status != http.StatusNotFound {
			t.Errorf("run: %d", status)
		}
		if e := srv.Executions(); len(e) != 0 {
			t.Errorf("refused calls ran: %+v", e)
		}
	})
}

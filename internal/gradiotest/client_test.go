package gradiotest_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/clienttest"
	"github.com/tollgate/tollgate/internal/gradiotest"
)

// TestOfficialClient drives the emulator with @gradio/client, the client
// tollgate's users run.
func TestOfficialClient(t *testing.T) {
	clients := clienttest.Node(t)
	srv := gradiotest.New(t, gradiotest.Options{Hold: true, ConnectHeartbeat: true})
	go func() {
		// Every call finishes at once but the one the script cancels.
		for {
			select {
			case r := <-srv.Started():
				if r.Data[0] == "cancel me" {
					continue
				}
				r.Progress(1, 2, "Vocoding")
				r.Finish()
			case <-t.Context().Done():
				return
			}
		}
	}()
	prompt := filepath.Join(t.TempDir(), "prompt.wav")
	if err := os.WriteFile(prompt, gradiotest.SineWAV(16000, 48000, 220), 0o644); err != nil {
		t.Fatal(err)
	}
	raw := clients.Run(t, 2*time.Minute, "gradio-client.mjs", srv.URL, prompt)
	t.Logf("client saw: %s", raw)
	var out struct {
		Root, Protocol string
		APIPrefix      string `json:"api_prefix"`
		Endpoints      map[string]struct {
			Parameters [][]any
			Returns    []string
			Generator  bool
		}
		Predict, PredictBuffer struct {
			File struct {
				Path, URL string
				OrigName  string `json:"orig_name"`
				Meta      map[string]string
			}
			Download struct {
				Status  int
				Type    string
				Seconds float64
			}
		}
		Submit []struct {
			Type, Stage, Level, Log string
			OriginalMsg             *string `json:"original_msg"`
			Progress                []struct {
				Index, Length int
				Desc          string
			}
			Path string
		}
		Generator     []string
		BadMode       string
		Cancel        []string
		CancelEventID string
		AfterCancel   string
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}

	t.Run("one session: its heartbeat, queue and every call", func(t *testing.T) {
		var beats, streams []string
		for _, r := range srv.Requests() {
			if h, ok := strings.CutPrefix(r.Path, "/gradio_api/heartbeat/"); ok {
				beats = append(beats, h)
			}
			if r.Path == "/gradio_api/queue/data" {
				streams = append(streams, r.Query)
			}
		}
		if len(beats) != 1 || len(streams) == 0 {
			t.Fatalf("heartbeats %v, queue/data %v", beats, streams)
		}
		for _, q := range streams {
			if q != "session_hash="+beats[0] {
				t.Errorf("queue/data?%s, want the heartbeat's session %s", q, beats[0])
			}
		}
		for _, e := range srv.Executions() {
			if e.SessionHash != beats[0] {
				t.Errorf("call %s in session %s, want %s", e.EventID, e.SessionHash, beats[0])
			}
		}
	})
	t.Run("connects with the app's root, sse_v3 and /gradio_api", func(t *testing.T) {
		if out.Root != srv.URL || out.Protocol != "sse_v3" || out.APIPrefix != "/gradio_api" {
			t.Errorf("root %q protocol %q prefix %q, want %q sse_v3 /gradio_api", out.Root, out.Protocol, out.APIPrefix, srv.URL)
		}
	})
	t.Run("view_api lists the endpoints and their parameters", func(t *testing.T) {
		ga := out.Endpoints["/generate_audio"]
		var names []string
		for _, p := range ga.Parameters {
			names = append(names, p[0].(string)+":"+p[1].(string))
		}
		want := []string{"text:Textbox", "prompt_audio:Audio", "mode:Radio", "speed:Slider"}
		if !slices.Equal(names, want) || !slices.Equal(ga.Returns, []string{"Audio"}) {
			t.Errorf("/generate_audio parameters %v returns %v, want %v [Audio]", names, ga.Returns, want)
		}
		if !out.Endpoints["/normalize_text"].Generator {
			t.Errorf("/normalize_text is not a generator: %+v", out.Endpoints["/normalize_text"])
		}
	})
	t.Run("predict returns a WAV as long as the text asks", func(t *testing.T) {
		p := out.Predict
		if !strings.HasPrefix(p.File.URL, srv.URL+"/gradio_api/file=") || p.File.Meta["_type"] != "gradio.FileData" {
			t.Errorf("output file %+v is not a FileData served by the app", p.File)
		}
		if p.Download.Status != 200 || p.Download.Type != "audio/wav" {
			t.Errorf("download: status %d type %q", p.Download.Status, p.Download.Type)
		}
		want := float64(len("Hello from the cloned voice.")) * 0.1
		if d := p.Download.Seconds - want; d < -0.001 || d > 0.001 {
			t.Errorf("audio lasts %.3f s, want %.3f", p.Download.Seconds, want)
		}
		if got, want := out.PredictBuffer.Download.Seconds, float64(len("Twice as fast"))*0.1/2; got < want-0.001 || got > want+0.001 {
			t.Errorf("audio at speed 2 lasts %.3f s, want %.3f", got, want)
		}
	})
	t.Run("the prompt audio was uploaded and reached the function", func(t *testing.T) {
		ups := srv.Uploads()
		if len(ups) < 2 {
			t.Fatalf("uploads %+v, want at least the path and the buffer", ups)
		}
		execs := srv.Executions()
		prompt, _ := execs[0].Data[1].(map[string]any)
		if prompt["path"] != ups[0].Path {
			t.Errorf("first call's prompt %v, want the uploaded %s", prompt, ups[0].Path)
		}
	})
	t.Run("submit reports queue, progress, log, data and completion", func(t *testing.T) {
		var seq []string
		var sawProgress bool
		for _, e := range out.Submit {
			s := e.Type + ":" + e.Stage
			if e.OriginalMsg != nil {
				s += ":" + *e.OriginalMsg
			}
			if e.Type == "log" {
				s = "log:" + e.Level
			}
			seq = append(seq, s)
			for _, p := range e.Progress {
				if p.Desc == "Vocoding" && p.Index == 1 && p.Length == 2 {
					sawProgress = true
				}
			}
		}
		for _, want := range []string{"status:pending", "status:pending:process_starts", "log:info", "data:", "status:complete"} {
			if !slices.Contains(seq, want) {
				t.Errorf("events %v lack %s", seq, want)
			}
		}
		if !sawProgress {
			t.Errorf("no progress event carried the function's progress: %+v", out.Submit)
		}
	})
	t.Run("a generator's partial outputs arrive in order", func(t *testing.T) {
		want := []string{"one", "one two", "one two three", "one two three"}
		if !slices.Equal(out.Generator, want) {
			t.Errorf("generator data %q, want %q", out.Generator, want)
		}
	})
	t.Run("gr.Error reaches the caller", func(t *testing.T) {
		if !strings.Contains(out.BadMode, "whisper") || !strings.Contains(out.BadMode, "not in the list of choices") {
			t.Errorf("bad mode: %q", out.BadMode)
		}
	})
	t.Run("cancel stops the running call", func(t *testing.T) {
		var found bool
		for _, e := range srv.Executions() {
			if e.EventID == out.CancelEventID {
				found = true
				if e.Outcome != gradiotest.Cancelled {
					t.Errorf("cancelled call's outcome %q", e.Outcome)
				}
			}
		}
		if !found {
			t.Errorf("no execution %q; client saw %v", out.CancelEventID, out.Cancel)
		}
		if n := len(out.Cancel); n == 0 || !strings.HasPrefix(out.Cancel[n-1], "error") && !strings.HasPrefix(out.Cancel[n-1], "complete") {
			t.Errorf("the cancelled call's events %v do not end it", out.Cancel)
		}
		if out.AfterCancel != "after the cancel" {
			t.Errorf("the call after the cancel returned %q", out.AfterCancel)
		}
	})
}

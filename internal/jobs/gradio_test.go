package jobs_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/gradiotest"
	"github.com/tollgate/tollgate/internal/media/mediatest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// cosyModel is a CosyVoice3-like job model on the emulated app at APP.
const cosyModel = `
headers: {user_id: X-User-ID}
jobs:
  - name: voice/cosyvoice3
    backend: gradio
    upstreams: [APP]
    api_name: /generate_audio
    inputs:
      text: {type: string, position: 0, required: true, max: 200}
      prompt: {type: audio, position: 1, required: true}
      mode: {type: string, position: 2, default: zero-shot, choices: [zero-shot, cross-lingual, instruct]}
      speed: {type: number, position: 3, default: 1.0, min: 0.5, max: 2.0}
    price: {per_request: "0.01", per_gpu_second: "0.001", per_output_audio_second: "0.002"}
`

func setupGradio(t *testing.T, cfgYAML string, opts gradiotest.Options) (*env, *gradiotest.Server) {
	t.Helper()
	app := gradiotest.New(t, opts)
	return setup(t, strings.ReplaceAll(cfgYAML, "APP", app.URL), http.NotFoundHandler()), app
}

func promptWAV() string {
	return "data:audio/wav;base64," + base64.StdEncoding.EncodeToString(gradiotest.SineWAV(16000, 8000, 220))
}

func TestGradioJob(t *testing.T) {
	t.Parallel()
	t.Run("a voice-cloning job returns a WAV link that downloads without auth, charged the app's time and the audio", func(t *testing.T) {
		t.Parallel()
		e, app := setupGradio(t, cosyModel, gradiotest.Options{RunTime: 250 * time.Millisecond})
		text := "hello tollgate" // 14 characters: 1.4 s of audio at speed 1
		p := e.create(t, "alice", "voice/cosyvoice3", map[string]any{"text": text, "prompt": promptWAV()}, "Prefer", "wait=30")
		if p.Status != "succeeded" {
			t.Fatalf("prediction %s (error %v), want succeeded", p.Status, p.Error)
		}
		link, ok := p.Output.(string)
		if !ok || !strings.HasPrefix(link, e.URL) {
			t.Fatalf("output %v, want a link into tollgate's result store", p.Output)
		}
		resp, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		wav, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		secs, err := gradiotest.WAVSeconds(wav)
		if resp.StatusCode != http.StatusOK || err != nil || secs < 1.39 || secs > 1.41 {
			t.Fatalf("download: %d, %v, %.3f s of audio; want 200 and a WAV of 1.4 s", resp.StatusCode, err, secs)
		}
		execs := app.Executions()
		if len(execs) != 1 {
			t.Fatalf("the app ran %d calls, want 1", len(execs))
		}
		x := execs[0]
		if x.Data[0] != text || x.Data[2] != "zero-shot" || x.Data[3] != 1.0 {
			t.Errorf("the app got data %v, want the text, prompt, mode and speed in their positions", x.Data)
		}
		if got := x.Header.Get("X-User-ID"); got != "usr_alice" {
			t.Errorf("the app saw X-User-ID %q, want usr_alice", got)
		}
		if ups := app.Uploads(); len(ups) != 1 || ups[0].Size != int64(len(gradiotest.SineWAV(16000, 8000, 220))) {
			t.Errorf("uploads %+v, want the prompt WAV once", ups)
		}
		r := e.record(t, p.ID)
		appTime := x.Ended.Sub(x.Started)
		if gpu := time.Duration(r.Units.GPUMillis) * time.Millisecond; gpu < 250*time.Millisecond || gpu > appTime+time.Millisecond {
			t.Errorf("GPU time %v in the ledger, want the app's processing time (at least 250ms, at most %v)", gpu, appTime)
		}
		if r.Units.OutputAudioMillis != int64(secs*1000+0.5) || r.Units.AudioMillis != 0 {
			t.Errorf("output audio %d ms, input audio %d ms in the ledger; want the returned WAV's %.3f s apart from the prompt",
				r.Units.OutputAudioMillis, r.Units.AudioMillis, secs)
		}
		if want := tollgate.Money(10_000 + r.Units.GPUMillis + 2*1400); r.Cost != want {
			t.Errorf("cost %s, want %s (0.01 + GPU seconds × 0.001 + 1.4 s of audio × 0.002)", r.Cost, want)
		}
	})

	t.Run("progress and logs reach the prediction's stream", func(t *testing.T) {
		t.Parallel()
		e, app := setupGradio(t, cosyModel, gradiotest.Options{Hold: true})
		p := e.create(t, "alice", "voice/cosyvoice3", map[string]any{"text": "progress", "prompt": promptWAV()})
		resp, err := http.Get(p.URLs["stream"])
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		run := app.NextStarted(t)
		// Sent once the stream is open (the app's first log may come
		// before it).
		run.Log("warning", "half way there")
		run.Progress(1, 4, "half way there")
		lines := bufio.NewScanner(resp.Body)
		seen := func(want string) {
			t.Helper()
			for lines.Scan() {
				if strings.Contains(lines.Text(), want) {
					return
				}
			}
			t.Fatalf("the stream ended without %q", want)
		}
		seen("warning: half way there") // the app's log message
		seen("0.25")                    // index 1 of 4
		run.Finish()
		seen("event: done")
		if got := e.get(t, "alice", p.ID); got.Status != "succeeded" || !strings.Contains(getLogs(t, e, p.ID), "Synthesizing 8 characters") {
			t.Errorf("prediction %s, want succeeded with the app's log in its logs", got.Status)
		}
	})

	t.Run("canceling a running job reaches Gradio's cancel", func(t *testing.T) {
		t.Parallel()
		e, app := setupGradio(t, cosyModel, gradiotest.Options{Hold: true})
		p := e.create(t, "alice", "voice/cosyvoice3", map[string]any{"text": "cancel me", "prompt": promptWAV()})
		run := app.NextStarted(t)
		if status, _, b := e.call(t, "alice", "POST", "/v1/predictions/"+p.ID+"/cancel", nil); status != http.StatusOK {
			t.Fatalf("cancel: %d %s", status, b)
		}
		_, got := e.streamUntilDone(t, "alice", p)
		if got.Status != "canceled" {
			t.Errorf("prediction %s, want canceled", got.Status)
		}
		cancels := 0
		for _, r := range app.Requests() {
			if r.Method == "POST" && r.Path == "/gradio_api/cancel" {
				cancels++
			}
		}
		if cancels == 0 {
			t.Errorf("the app got no cancel")
		}
		// The app runs one call at a time: the next job starts there once
		// the canceled call has ended.
		next := e.create(t, "alice", "voice/cosyvoice3", map[string]any{"text": "next", "prompt": promptWAV()})
		app.NextStarted(t).Finish()
		if _, got := e.streamUntilDone(t, "alice", next); got.Status != "succeeded" {
			t.Errorf("the job after the canceled one: %s, want succeeded", got.Status)
		}
		var outcome gradiotest.Outcome
		for _, x := range app.Executions() {
			if x.EventID == run.EventID {
				outcome = x.Outcome
			}
		}
		if outcome != gradiotest.Cancelled {
			t.Errorf("the app's call ended %q, want cancelled through /gradio_api/cancel", outcome)
		}
	})

	t.Run("a position that does not match the app fails the job with a config error naming the model", func(t *testing.T) {
		t.Parallel()
		bad := strings.Replace(cosyModel, "prompt: {type: audio, position: 1", "prompt: {type: audio, position: 2", 1)
		bad = strings.Replace(bad, "mode: {type: string, position: 2", "mode: {type: string, position: 1", 1)
		e, app := setupGradio(t, bad, gradiotest.Options{})
		p := e.create(t, "alice", "voice/cosyvoice3", map[string]any{"text": "x", "prompt": promptWAV()}, "Prefer", "wait=30")
		if p.Status != "failed" || p.Error == nil || !strings.Contains(*p.Error, "voice/cosyvoice3") || !strings.Contains(*p.Error, "position 2") {
			t.Fatalf("prediction %s, error %v; want failed with a config error naming the model and the position", p.Status, p.Error)
		}
		if len(app.Executions()) != 0 || len(app.Uploads()) != 0 {
			t.Errorf("the app got %d calls and %d uploads, want none", len(app.Executions()), len(app.Uploads()))
		}
	})

	t.Run("an api_name the app lacks fails the job naming the model", func(t *testing.T) {
		t.Parallel()
		e, _ := setupGradio(t, strings.Replace(cosyModel, "/generate_audio", "/clone", 1), gradiotest.Options{})
		p := e.create(t, "alice", "voice/cosyvoice3", map[string]any{"text": "x", "prompt": promptWAV()}, "Prefer", "wait=30")
		if p.Status != "failed" || p.Error == nil || !strings.Contains(*p.Error, "voice/cosyvoice3") || !strings.Contains(*p.Error, "/clone") {
			t.Fatalf("prediction %s, error %v; want failed naming the model and /clone", p.Status, p.Error)
		}
	})
}

func getLogs(t *testing.T, e *env, id string) string {
	t.Helper()
	_, _, b := e.call(t, "alice", "GET", "/v1/predictions/"+id, nil)
	return string(b)
}

// flacURI is a FLAC prompt of the given seconds at 16 kHz.
func flacURI(seconds int) string {
	return "data:audio/flac;base64," + base64.StdEncoding.EncodeToString(mediatest.FLAC(16000, int64(16000*seconds)))
}

func TestGradioJobRulesReadNonWAVPromptLengths(t *testing.T) {
	t.Parallel()
	limited := strings.Replace(cosyModel, "    price:", `    rules:
      - expr: 'media.prompt.seconds <= 5.0'
        message: "the prompt audio may last at most 5 s"
    price:`, 1)
	e, app := setupGradio(t, limited, gradiotest.Options{})
	status, _, body := e.call(t, "alice", "POST", "/v1/models/voice/cosyvoice3/predictions",
		map[string]any{"input": map[string]any{"text": "hi", "prompt": flacURI(10)}})
	if status < 400 || status >= 500 || !strings.Contains(string(body), "at most 5 s") {
		t.Errorf("a 10 s FLAC prompt: %d %s, want refused by the rule", status, body)
	}
	if len(app.Uploads()) != 0 {
		t.Errorf("the app got %d uploads for a refused prediction", len(app.Uploads()))
	}
	p := e.create(t, "alice", "voice/cosyvoice3", map[string]any{"text": "hi", "prompt": flacURI(3)}, "Prefer", "wait=30")
	if p.Status != "succeeded" {
		t.Errorf("a 3 s FLAC prompt: %s %v, want succeeded", p.Status, p.Error)
	}
	if ups := app.Uploads(); len(ups) != 1 || !strings.HasSuffix(ups[0].Path, ".flac") {
		t.Errorf("uploads %+v, want the FLAC prompt once, named .flac", ups)
	}
}

// An http job model whose upstream answers with speech, and one whose
// JSON answer links two WAVs on itself: each is charged the audio it
// returned, at most max_output_audio.
func TestHTTPJobChargesOutputAudio(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /speak", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/wav")
		w.Write(gradiotest.SineWAV(24000, 36000, 440)) // 1.5 s
	})
	mux.HandleFunc("POST /pair", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"a":"http://%s/a.wav","b":"http://%s/b.wav"}`, r.Host, r.Host)
	})
	mux.HandleFunc("GET /a.wav", func(w http.ResponseWriter, r *http.Request) { w.Write(gradiotest.SineWAV(24000, 48000, 440)) }) // 2 s
	mux.HandleFunc("GET /b.wav", func(w http.ResponseWriter, r *http.Request) { w.Write(gradiotest.SineWAV(24000, 96000, 440)) }) // 4 s
	e := setup(t, `
jobs:
  - name: voice/speak
    backend: http
    upstreams: [UPSTREAM]
    path: /speak
    price: {per_request: "0.01", per_output_audio_second: "0.002"}
  - name: voice/pair
    backend: http
    upstreams: [UPSTREAM]
    path: /pair
    max_output_audio: 5s
    price: {per_output_audio_second: "0.002"}
`, mux)
	speak := e.create(t, "alice", "voice/speak", map[string]any{}, "Prefer", "wait=30")
	pair := e.create(t, "alice", "voice/pair", map[string]any{}, "Prefer", "wait=30")
	if speak.Status != "succeeded" || pair.Status != "succeeded" {
		t.Fatalf("predictions %s %v, %s %v; want both succeeded", speak.Status, speak.Error, pair.Status, pair.Error)
	}
	if r := e.record(t, speak.ID); r.Units.OutputAudioMillis != 1500 || r.Cost != 13_000 {
		t.Errorf("voice/speak: %d ms of output audio costing %s; want 1500 ms, 0.01 + 1.5 s × 0.002 = 0.013", r.Units.OutputAudioMillis, r.Cost)
	}
	if r := e.record(t, pair.ID); r.Units.OutputAudioMillis != 6000 || r.Cost != 10_000 || r.Reserved != 10_000 {
		t.Errorf("voice/pair: %d ms of output audio costing %s (reserved %s); want 6000 ms charged as the 5 s bound, 0.010",
			r.Units.OutputAudioMillis, r.Cost, r.Reserved)
	}
}

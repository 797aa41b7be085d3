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

// TestOfficialClientOnTheWebUI drives the app shaped like CosyVoice's
// webui.py with @gradio/client: view_api lists generate_audio's ten
// parameters by their Python names, and a 3 s voice clone by those names
// returns a WAV of the length the text asks.
func TestOfficialClientOnTheWebUI(t *testing.T) {
	clients := clienttest.Node(t)
	srv := gradiotest.New(t, gradiotest.Options{App: gradiotest.AppCosyVoiceWebUI, RunTime: 100 * time.Millisecond})
	prompt := filepath.Join(t.TempDir(), "prompt.wav")
	if err := os.WriteFile(prompt, gradiotest.SineWAV(16000, 48000, 220), 0o644); err != nil {
		t.Fatal(err)
	}
	text := "收到好友从远方寄来的生日礼物。" // 15 characters: 1.5 s at 0.1 s each
	raw := clients.Run(t, time.Minute, "gradio-cosyvoice.mjs", srv.URL, "-", prompt, text)
	var out struct {
		Root       string
		Parameters []string
		Events     []string
		File       struct{ Path, URL string }
		Download   struct {
			Status  int
			Type    string
			Seconds float64
		}
		Error *string
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	want := []string{"tts_text", "mode_checkbox_group", "sft_dropdown", "prompt_text", "prompt_wav_upload",
		"prompt_wav_record", "instruct_text", "seed", "stream", "speed"}
	if !slices.Equal(out.Parameters, want) {
		t.Errorf("view_api parameters %v, want webui.py's %v", out.Parameters, want)
	}
	if out.Error != nil || out.Download.Status != 200 || out.Download.Type != "audio/wav" {
		t.Fatalf("predict: %s", raw)
	}
	if d := out.Download.Seconds - 1.5; d < -0.001 || d > 0.001 {
		t.Errorf("the cloned speech lasts %.3f s, want 1.5", out.Download.Seconds)
	}
	execs := srv.Executions()
	if len(execs) != 1 || execs[0].APIName != "generate_audio" || execs[0].FnIndex != 1 {
		t.Fatalf("executions %+v, want one generate_audio (fn 1)", execs)
	}
	x := execs[0]
	upload, _ := x.Data[4].(map[string]any)
	if x.Data[0] != text || x.Data[1] != "3s极速复刻" || x.Data[5] != nil || x.Data[8] != false || upload["path"] == nil {
		t.Errorf("the function got %v; want the text, the mode, the upload at 4, no recording, stream false", x.Data)
	}
	if x.AudioSecs != out.Download.Seconds {
		t.Errorf("the app made %.3f s, the client got %.3f s", x.AudioSecs, out.Download.Seconds)
	}
	if !slices.Contains(out.Events, "complete") || slices.ContainsFunc(out.Events, func(e string) bool { return strings.HasPrefix(e, "log:") }) {
		t.Errorf("events %v, want a completion and no warning", out.Events)
	}
}

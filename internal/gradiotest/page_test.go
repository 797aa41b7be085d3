package gradiotest_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/clienttest"
	"github.com/tollgate/tollgate/internal/gradiotest"
)

// TestPage uses the app's page in Chromium: it uploads the prompt, queues
// the call, streams the queue and plays the audio, all from config.root.
func TestPage(t *testing.T) {
	clients := clienttest.Node(t)
	chromium := clienttest.Chromium(t)
	srv := gradiotest.New(t, gradiotest.Options{MountPath: "/cosy"})
	prompt := filepath.Join(t.TempDir(), "prompt.wav")
	if err := os.WriteFile(prompt, gradiotest.SineWAV(16000, 32000, 220), 0o644); err != nil {
		t.Fatal(err)
	}
	raw := clients.Run(t, 2*time.Minute, "gradio-page.mjs", srv.URL+"/", prompt, chromium)
	var out struct {
		Status, Src, Root string
		AudioStatus       int
		AudioBytes        int
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	if out.Status != "complete" || out.Root != srv.URL {
		t.Fatalf("page: %+v", out)
	}
	execs := srv.Executions()
	if len(execs) != 1 || execs[0].Data[0] != "Spoken in the browser" || execs[0].Data[2] != "cross-lingual" {
		t.Fatalf("executions %+v", execs)
	}
	if !strings.HasPrefix(out.Src, srv.URL+"/gradio_api/file=") || out.AudioStatus != 200 {
		t.Errorf("audio %s: %d", out.Src, out.AudioStatus)
	}
	b, err := os.ReadFile(execs[0].Audio)
	if err != nil || len(b) != out.AudioBytes {
		t.Errorf("the page played %d bytes, the app wrote %d (%v)", out.AudioBytes, len(b), err)
	}
}

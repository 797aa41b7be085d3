package comfytest_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/clienttest"
	"github.com/tollgate/tollgate/internal/comfytest"
)

// TestSDK drives the emulator with the official @saintno/comfyui-sdk:
// upload, a DDColor run through CallWrapper and PromptBuilder with its
// progress and previews, the output image's download, a cached rerun, a
// queue delete, an interrupt and the history.
func TestSDK(t *testing.T) {
	clients := clienttest.Node(t)
	s := comfytest.New(t, comfytest.Options{Duration: func(p comfytest.Prompt) time.Duration {
		if strings.HasPrefix(saveprefix(p), "slow") {
			return time.Minute // ended by the SDK's interrupt
		}
		// CallWrapper subscribes to a prompt's events only after POST
		// /prompt answers; a prompt that finished before would be missed,
		// so each one takes a GPU-like moment.
		return 300 * time.Millisecond
	}})
	img := filepath.Join(t.TempDir(), "old.png")
	if err := os.WriteFile(img, comfytest.PNG(48, 32), 0o644); err != nil {
		t.Fatal(err)
	}
	out := clients.Run(t, 30*time.Second, "comfyui-sdk.mjs", s.URL, img)
	var got struct {
		SID      string
		Upload   struct{ Name, Subfolder, Type, Filename string }
		Started  string
		Progress []string
		Previews int
		Output   struct{ Filename, Subfolder, Type string }
		ImageURL string
		Download struct {
			Status      int
			ContentType string
			PNG         bool
			Width       int
			Height      int
		}
		HistoryCompleted   bool
		HistoryOutputs     []string
		CachedFilename     string
		QueueRunning       bool
		PendingListed      bool
		PendingAfterDelete bool
		Interrupted        string
		SlowStatus         string
		HistoryCount       int
		HistoryAfterClear  int
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("SDK output %s: %v", out, err)
	}
	t.Logf("SDK output: %s", out)
	if got.SID != "sdk-check-client" {
		t.Errorf("status sid %q, want the SDK's clientId", got.SID)
	}
	if got.Upload.Name != "old.png" || got.Upload.Subfolder != "alice" || got.Upload.Type != "input" {
		t.Errorf("upload %+v", got.Upload)
	}
	if _, err := os.Stat(filepath.Join(s.Dir("input"), "alice", "old.png")); err != nil {
		t.Errorf("uploaded file: %v", err)
	}
	if got.Started == "" || !slices.Equal(got.Progress, []string{"2:1/4", "2:2/4", "2:3/4", "2:4/4"}) || got.Previews != 4 {
		t.Errorf("started %q, progress %v, %d previews", got.Started, got.Progress, got.Previews)
	}
	if got.Output.Filename != "colorized_00001_.png" || got.Output.Subfolder != "alice" || got.Output.Type != "output" {
		t.Errorf("output %+v", got.Output)
	}
	if want := s.URL + "/view?filename=colorized_00001_.png&type=output&subfolder=alice"; got.ImageURL != want {
		t.Errorf("image URL %q, want %q", got.ImageURL, want)
	}
	if d := got.Download; d.Status != 200 || d.ContentType != "image/png" || !d.PNG || d.Width != 48 || d.Height != 32 {
		t.Errorf("download %+v, want a 48×32 PNG", d)
	}
	if !got.HistoryCompleted || !slices.Equal(got.HistoryOutputs, []string{"3"}) {
		t.Errorf("history completed %v outputs %v", got.HistoryCompleted, got.HistoryOutputs)
	}
	if got.CachedFilename != "colorized_00001_.png" {
		t.Errorf("cached rerun gave %q, want the first run's file", got.CachedFilename)
	}
	if !got.QueueRunning || !got.PendingListed || got.PendingAfterDelete {
		t.Errorf("queue: slow prompt running %v, pending listed %v, still listed after delete %v", got.QueueRunning, got.PendingListed, got.PendingAfterDelete)
	}
	if got.Interrupted != "DDColor_Colorize" || got.SlowStatus != "error" {
		t.Errorf("interrupt: %q, history status %q; want DDColor_Colorize interrupted, error", got.Interrupted, got.SlowStatus)
	}
	if got.HistoryCount != 3 || got.HistoryAfterClear != 0 {
		t.Errorf("history: %d entries, %d after clear; want 3, 0", got.HistoryCount, got.HistoryAfterClear)
	}
	log := s.Executions()
	if len(log) != 3 || log[0].Status != "success" || log[1].Status != "success" || log[2].Status != "interrupted" {
		t.Errorf("execution log %+v", log)
	}
}

// saveprefix is the filename_prefix of the prompt's SaveImage node.
func saveprefix(p comfytest.Prompt) string {
	for _, n := range p.Graph {
		m, _ := n.(map[string]any)
		if m["class_type"] == "SaveImage" {
			in, _ := m["inputs"].(map[string]any)
			s, _ := in["filename_prefix"].(string)
			return s
		}
	}
	return ""
}

package comfytest_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"slices"
	"testing"

	"github.com/tollgate/tollgate/internal/comfytest"
)

// TestMessageSequence checks the websocket messages of one prompt, in
// order, as server.py and execution.py send them, and that another
// client receives only the status broadcasts.
func TestMessageSequence(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{Hold: true})
	alice := dial(t, s, "/ws?clientId=alice")
	bob := dial(t, s, "/api/ws?clientId=bob")
	for _, c := range []*comfytest.WSClient{alice, bob} {
		f := c.Next()
		if f.Type != "status" || f.Data["sid"] == nil {
			t.Fatalf("first frame %+v, want status with sid", f)
		}
	}
	id := submit(t, s, "alice", ddcolor("old.png", "alice/out", 512))
	if err := s.WaitHeld(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	s.Release(id)
	got := alice.Until(promptDone(id))
	want := []string{"status", "status", "execution_start", "execution_cached", "executing", "executing",
		"progress", "preview", "progress", "preview", "progress", "preview", "progress", "preview",
		"executing", "executed", "execution_success", "status", "executing"}
	if !slices.Equal(kinds(got), want) {
		t.Fatalf("alice got %v\nwant %v", kinds(got), want)
	}
	for _, f := range got {
		switch {
		case f.Binary != nil:
			if binary.BigEndian.Uint32(f.Binary[0:4]) != comfytest.PreviewImage || binary.BigEndian.Uint32(f.Binary[4:8]) != 1 || !bytes.HasPrefix(f.Binary[8:], []byte{0xff, 0xd8}) {
				t.Errorf("preview header % x, want type 1, JPEG", f.Binary[:10])
			}
		case f.Type == "status":
		case f.Type == "executing" && f.Data["node"] == nil:
		default:
			if f.Data["prompt_id"] != id {
				t.Errorf("%s carries prompt_id %v, want %s", f.Type, f.Data["prompt_id"], id)
			}
		}
		if f.Type == "progress" && (f.Data["node"] != "2" || f.Data["max"] != 4.0) {
			t.Errorf("progress %v, want node 2 of max 4", f.Data)
		}
	}
	executed := got[len(got)-4].Data
	images := executed["output"].(map[string]any)["images"].([]any)
	if img := images[0].(map[string]any); executed["node"] != "3" || img["filename"] != "out_00001_.png" || img["subfolder"] != "alice" || img["type"] != "output" {
		t.Errorf("executed %v", executed)
	}
	if q := got[len(got)-2].Data["status"].(map[string]any)["exec_info"].(map[string]any)["queue_remaining"]; q != 0.0 {
		t.Errorf("final status queue_remaining %v, want 0", q)
	}
	var lastState map[string]any
	for _, f := range got {
		if f.Type == "progress_state" {
			lastState = f.Data["nodes"].(map[string]any)
		}
	}
	for _, n := range []string{"1", "2", "3"} {
		if st, _ := lastState[n].(map[string]any); st["state"] != "finished" {
			t.Errorf("last progress_state of node %s: %v, want finished", n, st)
		}
	}
	var start, end any
	for _, f := range got {
		switch f.Type {
		case "execution_start":
			start = f.Data["timestamp"]
		case "execution_success":
			end = f.Data["timestamp"]
		}
	}
	if log := s.Executions(); len(log) != 1 || float64(log[0].Start.UnixMilli()) != start || float64(log[0].End.UnixMilli()) != end {
		t.Errorf("execution log %+v, want the messages' times %v and %v", log, start, end)
	}
	// A broadcast after the prompt: bob must have had only statuses.
	postJSON(t, s.URL+"/queue", map[string]any{"clear": true})
	for i, f := range bob.Until(func() func(frame) bool {
		n := 0
		return func(f frame) bool { n++; return n == 4 }
	}()) {
		if f.Type != "status" {
			t.Errorf("bob's frame %d is %s %v: another client's message", i, f.Type, f.Data)
		}
	}
}

// TestPreviewMetadata checks the feature_flags exchange and the type 4
// previews a client gets once it announced supports_preview_metadata.
func TestPreviewMetadata(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{})
	c := dial(t, s, "/ws?clientId=ui")
	c.Next()
	c.Send(map[string]any{"type": "feature_flags", "data": map[string]any{"supports_preview_metadata": true}})
	if f := c.Next(); f.Type != "feature_flags" || f.Data["supports_preview_metadata"] != true {
		t.Fatalf("reply %+v, want the server's feature_flags", f)
	}
	id := submit(t, s, "ui", ddcolor("old.png", "ui", 512))
	var previews int
	for _, f := range c.Until(promptDone(id)) {
		if f.Binary == nil {
			continue
		}
		previews++
		n := binary.BigEndian.Uint32(f.Binary[4:8])
		var meta map[string]any
		if binary.BigEndian.Uint32(f.Binary[0:4]) != comfytest.PreviewImageWithMetadata || json.Unmarshal(f.Binary[8:8+n], &meta) != nil {
			t.Fatalf("preview % x, want type 4 with metadata", f.Binary[:12])
		}
		if meta["prompt_id"] != id || meta["node_id"] != "2" || meta["image_type"] != "image/jpeg" || !bytes.HasPrefix(f.Binary[8+n:], []byte{0xff, 0xd8}) {
			t.Errorf("preview metadata %v", meta)
		}
	}
	if previews != 4 {
		t.Errorf("%d previews, want 4", previews)
	}
}

// TestClientIDReuse checks that a socket reusing a clientId takes the
// sid over, as server.py's sockets dict does: the older socket gets
// nothing more, not even broadcasts.
func TestClientIDReuse(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{})
	first := dial(t, s, "/ws?clientId=shared")
	first.Next()
	second := dial(t, s, "/ws?clientId=shared")
	second.Next()
	id := submit(t, s, "shared", ddcolor("old.png", "r", 512))
	second.Until(promptDone(id))
	postJSON(t, s.URL+"/queue", map[string]any{"clear": true}) // a last broadcast
	second.Until(func(f frame) bool { return f.Type == "status" })
	select {
	case f := <-first.Frames():
		t.Errorf("the replaced socket got %s %v", f.Type, f.Data)
	default:
	}
}

// TestNoClientID checks what the real progress hook does for a prompt
// posted without client_id: progress and previews go to every socket,
// the other messages to none.
func TestNoClientID(t *testing.T) {
	t.Parallel()
	s := setup(t, comfytest.Options{})
	c := dial(t, s, "/ws?clientId=watcher")
	c.Next()
	code, out := postJSON(t, s.URL+"/prompt", map[string]any{"prompt": ddcolor("old.png", "n", 512)})
	if code != 200 {
		t.Fatalf("POST /prompt: %d %v", code, out)
	}
	if _, err := s.WaitDone(ctxT(t), out["prompt_id"].(string)); err != nil {
		t.Fatal(err)
	}
	postJSON(t, s.URL+"/queue", map[string]any{"clear": true})
	statuses := 0
	got := c.Until(func(f frame) bool {
		if f.Type == "status" {
			statuses++
		}
		return statuses == 4
	})
	want := []string{"status", "status", "progress", "preview", "progress", "preview", "progress", "preview", "progress", "preview", "status", "status"}
	if !slices.Equal(kinds(got), want) {
		t.Errorf("watcher got %v, want %v", kinds(got), want)
	}
}

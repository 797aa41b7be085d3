package main

import (
	"testing"

	"github.com/tollgate/tollgate/internal/comfytest"
)

// TestComfyRouteBroadcasts: ComfyUI sends what a custom node sends
// without a sid to every socket, whoever's prompt it came from (a
// node's feedback of a prompt's text, say); only ComfyUI's own
// feature_flags answer passes to a browser's socket.
func TestComfyRouteBroadcasts(t *testing.T) {
	s := comfytest.New(t, comfytest.Options{})
	g := comfyGateway(t, s)
	bob := g.userKey("bob", "")
	bws, _ := comfyWS(t, g, bob, "bob-client")
	if f := bws.Next(); f.Type != "feature_flags" {
		t.Fatalf("bob's socket got %+v, want ComfyUI's feature_flags", f)
	}
	s.Broadcast("impact-node-feedback", map[string]any{"node_id": "5", "widget_name": "text", "value": "alice's prompt text"})
	s.Broadcast("crystools.monitor", map[string]any{"cpu_utilization": 3})
	s.Broadcast("feature_flags", map[string]any{"sentinel": true}) // sent after them on the same socket
	for _, f := range bws.Until(func(f comfytest.Frame) bool { return f.Type == "feature_flags" }) {
		if f.Type != "feature_flags" && f.Type != "status" {
			t.Errorf("bob's socket got a broadcast %s %v", f.Type, f.Data)
		}
	}
}

package main

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

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

// TestComfyRouteSocketBound: a user's sockets on a route are bounded
// even when opened all at once (each holds one to ComfyUI).
func TestComfyRouteSocketBound(t *testing.T) {
	s := comfytest.New(t, comfytest.Options{})
	g := comfyGateway(t, s)
	bob := g.userKey("bob", "")
	const n = 64
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(g.URL, "http")+"/comfy/ws?clientId=c"+strconv.Itoa(i),
				&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + bob}}})
			if err != nil {
				if resp != nil {
					codes <- resp.StatusCode
				} else {
					codes <- 0
				}
				return
			}
			codes <- http.StatusSwitchingProtocols
			t.Cleanup(func() { _ = c.CloseNow() })
		})
	}
	wg.Wait()
	close(codes)
	opened := 0
	for c := range codes {
		switch c {
		case http.StatusSwitchingProtocols:
			opened++
		case http.StatusTooManyRequests:
		default:
			t.Errorf("a socket answered %d", c)
		}
	}
	if opened != 32 {
		t.Errorf("%d sockets opened at once, want 32", opened)
	}
}

package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestJobCreateRateLimit: through the gateway, a model's rate_limit
// refuses the create past it with 429 rate_limit_exceeded and
// Retry-After, and the refused create queues nothing.
func TestJobCreateRateLimit(t *testing.T) {
	_, upstream := newSlot(t)
	g := setup(t, strings.Replace(jobsConfig(upstream), "    capacity: 1\n", "    capacity: 1\n    rate_limit: 2/h\n", 1))
	alice := g.userKey("alice", "")
	for i := range 2 {
		if resp, body := g.do("POST", "/v1/models/test/slot/predictions", alice, `{"input":{"prompt":"p"}}`); resp.StatusCode != 201 {
			t.Fatalf("create %d: %d %s", i+1, resp.StatusCode, body)
		}
	}
	resp, body := g.do("POST", "/v1/models/test/slot/predictions", alice, `{"input":{"prompt":"p"}}`)
	var e struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(body, &e)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || e.Error.Code != "rate_limit_exceeded" ||
		!strings.Contains(e.Error.Message, "the model limit of 2/h") {
		t.Fatalf("third create: %d Retry-After %q %s, want 429 naming the model limit of 2/h", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	_, body = g.do("GET", "/v1/predictions", alice, "")
	var page struct{ Results []struct{ ID string } }
	if err := json.Unmarshal(body, &page); err != nil || len(page.Results) != 2 {
		t.Fatalf("alice's predictions: %s, want the two accepted", body)
	}
}

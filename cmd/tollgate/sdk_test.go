package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/clienttest"
)

// TestOpenAISDK drives serve --demo with the official OpenAI JS SDK, as the
// README shows: a completion, a stream, the model list, and a bad key the
// SDK reports as an AuthenticationError.
func TestOpenAISDK(t *testing.T) {
	clients := clienttest.Node(t)
	g := setupWith(t, "", true)
	key := strings.TrimSpace(g.mustCLI("key", "create", "--user", "admin"))
	out := clients.Run(t, time.Minute, "openai.mjs", g.URL+"/v1", key)
	var got struct {
		Plain, Streamed, BadKey string
		Usage                   struct{ PromptTokens, CompletionTokens int } `json:"usage"`
		Models                  []string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("SDK output %s: %v", out, err)
	}
	if got.Plain != "hello through the gateway" || got.Streamed != "one two three" {
		t.Errorf("SDK got plain %q, streamed %q", got.Plain, got.Streamed)
	}
	if !slices.Contains(got.Models, "demo-echo") {
		t.Errorf("SDK models %v, want demo-echo", got.Models)
	}
	if got.BadKey != "AuthenticationError 401 invalid_token" {
		t.Errorf("SDK reported a bad key as %q", got.BadKey)
	}
}

package jobs_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/limit"
)

const limitedModels = `
plans:
  free: {rate_limit: 2/h, concurrency: 1}
jobs:
  - name: demo/echo
    backend: http
    upstreams: [UPSTREAM]
    path: /run
    timeout: 10s
    inputs:
      prompt: {type: string, required: true}
    price: {per_request: "0.01", per_gpu_second: "0.001"}
`

// TestCreateRateLimited: a create spends the plan's rate limit, as a
// proxied call does; past it the create is a 429 rate_limit_exceeded with
// Retry-After that queues nothing and reserves nothing, while a repeated
// create with the same Idempotency-Key and body spends no token and is
// answered even past the limit.
func TestCreateRateLimited(t *testing.T) { onEngines(t, testCreateRateLimited) }

func testCreateRateLimited(t *testing.T, engine string) {
	var e *env
	e = setupOn(t, engine, limitedModels, echo(func() *clock { return e.clock }))
	lim, err := limit.New(e.cfg, limit.Options{Now: e.clock.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e.opts.Limits = lim.Creates()
	e.restart(t)

	first := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "one"}, "Idempotency-Key", "k1")
	status, _, b := e.call(t, "alice", "POST", "/v1/models/demo/echo/predictions",
		map[string]any{"input": map[string]any{"prompt": "one"}}, "Idempotency-Key", "k1")
	var again pred
	_ = json.Unmarshal(b, &again)
	if status != http.StatusOK || again.ID != first.ID {
		t.Fatalf("repeated create: %d %s, want 200 with %s", status, b, first.ID)
	}
	// The repeat spent no token: the second of the plan's two fits.
	status, hdr, b := e.call(t, "alice", "POST", "/v1/models/demo/echo/predictions",
		map[string]any{"input": map[string]any{"prompt": "two"}})
	if status != http.StatusCreated || hdr.Get("RateLimit-Limit") != "2" || hdr.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("second create: %d RateLimit-Limit %q -Remaining %q %s, want 201 with 2 and 0",
			status, hdr.Get("RateLimit-Limit"), hdr.Get("RateLimit-Remaining"), b)
	}

	status, hdr, b = e.call(t, "alice", "POST", "/v1/models/demo/echo/predictions",
		map[string]any{"input": map[string]any{"prompt": "three"}})
	var refusal struct {
		Error struct{ Message, Type, Code string }
	}
	_ = json.Unmarshal(b, &refusal)
	if status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" || refusal.Error.Code != "rate_limit_exceeded" ||
		refusal.Error.Type != "rate_limit_error" || !strings.Contains(refusal.Error.Message, "the user limit of 2/h") {
		t.Fatalf("third create: %d Retry-After %q %s, want 429 rate_limit_exceeded naming the user limit of 2/h",
			status, hdr.Get("Retry-After"), b)
	}
	// Past the limit, a repeat is still answered, and a repeat with
	// another body is still a conflict, not a rate limit.
	if again := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "one"}, "Idempotency-Key", "k1"); again.ID != first.ID {
		t.Fatalf("repeat past the limit gave %s, want %s", again.ID, first.ID)
	}
	if status, _, b := e.call(t, "alice", "POST", "/v1/models/demo/echo/predictions",
		map[string]any{"input": map[string]any{"prompt": "other"}}, "Idempotency-Key", "k1"); status != http.StatusConflict {
		t.Fatalf("key reused with another body: %d %s, want 409", status, b)
	}
	// Another user has limits of their own.
	e.create(t, "bob", "demo/echo", map[string]any{"prompt": "bob's"})

	status, _, b = e.call(t, "alice", "GET", "/v1/predictions", nil)
	var list struct{ Results []pred }
	_ = json.Unmarshal(b, &list)
	if status != http.StatusOK || len(list.Results) != 2 {
		t.Fatalf("alice's predictions: %d %s, want the 2 accepted (the refused one queued nothing)", status, b)
	}
	e.stop()
	recs, err := e.ledger.Export(t.Context(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	// A job still waiting when the service stopped keeps its record
	// open (held) for the next start; it counts as well.
	open, err := e.ledger.HeldOpen(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range append(recs, open...) {
		ids = append(ids, r.RequestID)
	}
	if len(ids) != 3 {
		t.Fatalf("usage records %v, want 3 (alice's two jobs and bob's): a refused or repeated create holds nothing", ids)
	}
}

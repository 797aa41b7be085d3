package meter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/meter"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// TestStreamedCompletionIsMetered streams a completion through the data
// plane: the ledger gets the upstream's token usage, and the client, who
// did not ask for usage, gets no usage chunk.
func TestStreamedCompletionIsMetered(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			StreamOptions struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "text/event-stream")
		for _, word := range []string{"hel", "lo"} {
			fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", word)
			w.(http.Flusher).Flush()
		}
		if req.StreamOptions.IncludeUsage {
			fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":2,\"total_tokens\":13}}\n\n")
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	defer up.Close()
	cfg := gatewayConfig(t, up.URL)
	l := mustSQLite(t).Ledger()
	m := mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l})
	gw := newGateway(t, cfg, m)

	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer u1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(body), "usage") || !strings.Contains(string(body), "[DONE]") {
		t.Errorf("client got %d:\n%s", resp.StatusCode, body)
	}
	id := resp.Header.Get("X-Request-ID")
	gw.Close()
	m.Stop()
	r, err := l.Record(context.Background(), id)
	if err != nil {
		t.Fatalf("record %q: %v", id, err)
	}
	if r.Units.InputTokens != 11 || r.Units.OutputTokens != 2 || r.Outcome != tollgate.ResultOK || r.Cost.String() != "0.001000" {
		t.Errorf("record = %+v", r)
	}
}

// TestAbandonedStreamIsMetered: a client that goes away mid-stream still
// leaves a settled record, outcome cancelled, charged for the request.
func TestAbandonedStreamIsMetered(t *testing.T) {
	first := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hel\"}}]}\n\n")
		w.(http.Flusher).Flush()
		close(first)
		<-r.Context().Done() // the gateway cancels when the client leaves
	}))
	defer up.Close()
	cfg := gatewayConfig(t, up.URL)
	l := mustSQLite(t).Ledger()
	m := mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l})
	gw := newGateway(t, cfg, m)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer u1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Header.Get("X-Request-ID")
	<-first
	buf := make([]byte, 16)
	_, _ = resp.Body.Read(buf)
	cancel()
	resp.Body.Close()
	gw.Close() // waits for the handler, and so for the release
	m.Stop()
	r, err := l.Record(context.Background(), id)
	if err != nil {
		t.Fatalf("record %q: %v", id, err)
	}
	if !r.Settled || r.Outcome != tollgate.ResultCancelled || r.Cost.String() != "0.001000" {
		t.Errorf("abandoned stream record = %+v", r)
	}
}

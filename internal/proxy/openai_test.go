package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/proxy"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// Chunks of the fake model's stream.
const (
	chunk1     = `{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"}}]}`
	chunk2     = `{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}`
	usageChunk = `{"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13}}`
)

func sse(data ...string) string {
	var b strings.Builder
	for _, d := range data {
		b.WriteString("data: " + d + "\n\n")
	}
	return b.String()
}

// fakeLLM answers OpenAI chat requests like vLLM. Streams send chunk1,
// wait for gate (when set), then send the rest, with the usage chunk only
// when the request asked for it. Each request body is sent on seen.
func fakeLLM(name string, gate <-chan struct{}, seen chan<- map[string]any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		_ = json.NewDecoder(r.Body).Decode(&req)
		if seen != nil {
			seen <- req
		}
		if req["stream"] != true {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"hi from %s"}}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`, req["model"], name)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		send := func(s string) {
			_, _ = io.WriteString(w, s)
			w.(http.Flusher).Flush()
		}
		send(sse(chunk1))
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		send(sse(chunk2))
		if so, _ := req["stream_options"].(map[string]any); so["include_usage"] == true {
			send(sse(usageChunk))
		}
		send(sse("[DONE]"))
	}
}

func llmConfig(urls ...any) string {
	return fmt.Sprintf(`
routes:
  - name: llm
    type: openai
    path: /v1/
    upstreams: [%s]
    scopes: [infer:text]
`, urls...)
}

// readEvent reads one SSE event (up to its blank line), failing the test
// if none arrives within a generous bound instead of hanging.
func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		var ev strings.Builder
		for {
			line, err := br.ReadString('\n')
			ev.WriteString(line)
			if err != nil || line == "\n" {
				got <- ev.String()
				return
			}
		}
	}()
	select {
	case ev := <-got:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event arrived: the stream is buffered")
		return ""
	}
}

func TestStreamEventByEvent(t *testing.T) {
	for _, body := range []string{
		`{"model":"m","stream":true,"messages":[]}`,
		`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}`,
	} {
		gate := make(chan struct{})
		up := newUpstream(t, "llm", fakeLLM("llm", gate, nil))
		g := setup(t, llmConfig(up.URL), proxy.Options{})
		res := do(t, "POST", g.URL+"/v1/chat/completions", "tok-alice", strings.NewReader(body))
		wantStatus(t, res, 200)
		br := bufio.NewReader(res.Body)
		// The upstream is blocked until the first event was read here.
		if ev := readEvent(t, br); ev != sse(chunk1) {
			t.Fatalf("first event %q", ev)
		}
		close(gate)
		if ev := readEvent(t, br); ev != sse(chunk2) {
			t.Fatalf("second event %q", ev)
		}
	}
}

func TestStreamUsage(t *testing.T) {
	seen := make(chan map[string]any, 1)
	up := newUpstream(t, "llm", fakeLLM("llm", nil, seen))
	meter := newAdmission("meter", nil)
	g := setup(t, llmConfig(up.URL), proxy.Options{Admissions: []tollgate.Admission{meter}})

	t.Run("client did not ask for usage", func(t *testing.T) {
		res := do(t, "POST", g.URL+"/v1/chat/completions", "tok-alice",
			strings.NewReader(`{"model":"m","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`))
		wantStatus(t, res, 200)
		if got, want := readAll(t, res.Body), sse(chunk1, chunk2, "[DONE]"); got != want {
			t.Errorf("client stream:\n%s\nwant:\n%s", got, want)
		}
		req := <-seen
		if so, _ := req["stream_options"].(map[string]any); so["include_usage"] != true {
			t.Errorf("upstream request stream_options = %v, want include_usage added", req["stream_options"])
		}
		if req["max_tokens"] != float64(64) || req["messages"] == nil {
			t.Errorf("upstream request lost fields: %v", req)
		}
		out := <-meter.released
		if out.Units.InputTokens != 11 || out.Units.OutputTokens != 2 || out.Status != 200 || out.Result != tollgate.ResultOK {
			t.Errorf("outcome %+v, want 11 in / 2 out tokens, 200 ok", out)
		}
	})
	t.Run("client asked for usage", func(t *testing.T) {
		res := do(t, "POST", g.URL+"/v1/chat/completions", "tok-alice",
			strings.NewReader(`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}`))
		wantStatus(t, res, 200)
		if got, want := readAll(t, res.Body), sse(chunk1, chunk2, usageChunk, "[DONE]"); got != want {
			t.Errorf("client stream is not the upstream's bytes:\n%s\nwant:\n%s", got, want)
		}
		<-seen
		if out := <-meter.released; out.Units.InputTokens != 11 || out.Units.OutputTokens != 2 {
			t.Errorf("outcome units %+v", out.Units)
		}
	})
	t.Run("plain response", func(t *testing.T) {
		res := do(t, "POST", g.URL+"/v1/chat/completions", "tok-alice",
			strings.NewReader(`{"model":"m","max_completion_tokens":300,"messages":[]}`))
		wantStatus(t, res, 200)
		if body := readAll(t, res.Body); !strings.Contains(body, "hi from llm") {
			t.Errorf("body %s", body)
		}
		<-seen
		out := <-meter.released
		if out.Units.InputTokens != 11 || out.Units.OutputTokens != 7 || out.BytesOut == 0 {
			t.Errorf("outcome %+v, want 11 in / 7 out tokens", out)
		}
		meter.mu.Lock()
		call := meter.calls[len(meter.calls)-1]
		meter.mu.Unlock()
		if call.Model != "m" || call.MaxOutputTokens != 300 || !strings.Contains(string(call.Body), "max_completion_tokens") ||
			call.Principal == nil || call.Principal.UserID != "alice" || call.Route != "llm" || call.RequestID == "" {
			t.Errorf("call %+v", call)
		}
	})
}

func TestDisconnectCancelsUpstream(t *testing.T) {
	cancelled := make(chan struct{})
	up := newUpstream(t, "llm", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, sse(chunk1))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(cancelled)
	})
	meter := newAdmission("meter", nil)
	g := setup(t, llmConfig(up.URL), proxy.Options{Admissions: []tollgate.Admission{meter}})

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", g.URL+"/v1/chat/completions", strings.NewReader(`{"model":"m","stream":true}`))
	req.Header.Set("Authorization", "Bearer tok-alice")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ev := readEvent(t, bufio.NewReader(res.Body)); ev != sse(chunk1) {
		t.Fatalf("first event %q", ev)
	}
	cancel()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request was not cancelled when the client went away")
	}
	out := <-meter.released
	if out.Result != tollgate.ResultCancelled {
		t.Errorf("outcome %+v, want result cancelled", out)
	}
	if _, releases := meter.counts(); releases != 1 {
		t.Errorf("released %d times, want once", releases)
	}
}

func TestDisconnectBeforeResponse(t *testing.T) {
	arrived, cancelled := make(chan struct{}), make(chan struct{})
	up := newUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		// A server notices a closed connection once it read the body.
		_, _ = io.Copy(io.Discard, r.Body)
		close(arrived)
		<-r.Context().Done()
		close(cancelled)
	})
	meter := newAdmission("meter", nil)
	g := setup(t, fmt.Sprintf("routes:\n  - {name: ocr, path: /ocr, upstreams: [%s]}\n", up.URL),
		proxy.Options{Admissions: []tollgate.Admission{meter}})

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", g.URL+"/ocr", strings.NewReader("image bytes"))
	req.Header.Set("Authorization", "Bearer tok-alice")
	errc := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	<-arrived
	cancel()
	<-errc
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request was not cancelled when the client went away")
	}
	out := <-meter.released
	if out.Result != tollgate.ResultCancelled || out.Status != 499 {
		t.Errorf("outcome %+v, want cancelled 499", out)
	}
	waitIdle(t, g)
	if _, releases := meter.counts(); releases != 1 {
		t.Errorf("released %d times, want once", releases)
	}
}

func TestEmbeddingsUsage(t *testing.T) {
	emb := newUpstream(t, "emb", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		// Large enough that only the tail of the body is kept for usage.
		fmt.Fprintf(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[%s0.5]}],"model":"e5","usage":{"prompt_tokens":8,"total_tokens":8}}`,
			strings.Repeat("0.123456789,", 30000))
	})
	meter := newAdmission("meter", nil)
	g := setup(t, llmConfig(emb.URL), proxy.Options{Admissions: []tollgate.Admission{meter}})
	res := do(t, "POST", g.URL+"/v1/embeddings", "tok-alice", strings.NewReader(`{"model":"e5","input":"hello"}`))
	wantStatus(t, res, 200)
	var body struct {
		Data []struct {
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || len(body.Data) != 1 || len(body.Data[0].Embedding) != 30001 {
		t.Fatalf("embedding response altered: %v", err)
	}
	if out := <-meter.released; out.Units.InputTokens != 8 || out.Units.OutputTokens != 0 {
		t.Errorf("units %+v, want 8 input tokens", out.Units)
	}
}

// TestStreamUsageWithContentLength: an upstream that sends its whole
// event stream at once with a Content-Length still reaches the client
// whole, without the usage chunk the gateway asked for, and metered.
func TestStreamUsageWithContentLength(t *testing.T) {
	body := sse(chunk1, chunk2, usageChunk, "[DONE]")
	up := newUpstream(t, "llm", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = io.WriteString(w, body)
	})
	meter := newAdmission("meter", nil)
	g := setup(t, llmConfig(up.URL), proxy.Options{Admissions: []tollgate.Admission{meter}})
	res := do(t, "POST", g.URL+"/v1/chat/completions", "tok-alice",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	wantStatus(t, res, 200)
	if got, want := readAll(t, res.Body), sse(chunk1, chunk2, "[DONE]"); got != want {
		t.Errorf("client stream:\n%s\nwant:\n%s", got, want)
	}
	if out := <-meter.released; out.Units.InputTokens != 11 || out.Units.OutputTokens != 2 {
		t.Errorf("outcome units %+v, want 11 in / 2 out", out.Units)
	}
}

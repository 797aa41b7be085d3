// Package demo holds small built-in demo backends that `tollgate serve
// --demo` starts beside the gateway, so a newcomer sees the whole flow
// without a GPU: an OpenAI-compatible echo model that streams, and a slow
// image endpoint that "colorizes" a picture by tinting it. They are demos,
// named as such everywhere they appear, not models.
package demo

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"strings"
	"time"
)

// EchoModel is the name of the demo chat model.
const EchoModel = "demo-echo"

// Echo is an OpenAI-compatible demo model: it answers with the last user
// message, word by word when asked to stream.
type Echo struct {
	// WordDelay between streamed words. Defaults to 0.
	WordDelay time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content any    `json:"content"`
	} `json:"messages"`
	Prompt        any  `json:"prompt"`
	Input         any  `json:"input"`
	MaxTokens     int  `json:"max_tokens"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// Handler serves /v1/chat/completions, /v1/completions, /v1/embeddings and
// /v1/models.
func (e *Echo) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"object": "list", "data": []any{map[string]any{"id": EchoModel, "object": "model", "owned_by": "tollgate-demo"}}})
	})
	mux.HandleFunc("POST /v1/chat/completions", e.complete(true))
	mux.HandleFunc("POST /v1/completions", e.complete(false))
	mux.HandleFunc("POST /v1/embeddings", e.embed)
	return mux
}

func (e *Echo) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Echo) complete(chat bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req chatRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
			return
		}
		prompt := textOf(req.Prompt)
		if chat {
			prompt = ""
			for _, m := range req.Messages {
				if m.Role == "user" {
					prompt = textOf(m.Content)
				}
			}
		}
		words := strings.Fields(prompt)
		if req.MaxTokens > 0 && len(words) > req.MaxTokens {
			words = words[:req.MaxTokens]
		}
		inTokens := len(strings.Fields(prompt)) + 3
		usage := map[string]int{"prompt_tokens": inTokens, "completion_tokens": len(words), "total_tokens": inTokens + len(words)}
		id := fmt.Sprintf("demo-%d", e.now().UnixNano())
		object := "text_completion"
		if chat {
			object = "chat.completion"
		}
		if !req.Stream {
			choice := map[string]any{"index": 0, "finish_reason": "stop", "text": strings.Join(words, " ")}
			if chat {
				choice = map[string]any{"index": 0, "finish_reason": "stop", "message": map[string]string{"role": "assistant", "content": strings.Join(words, " ")}}
			}
			writeJSON(w, map[string]any{"id": id, "object": object, "created": e.now().Unix(), "model": EchoModel, "choices": []any{choice}, "usage": usage})
			return
		}
		e.stream(w, r, chat, id, words, usage, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
	}
}

func (e *Echo) stream(w http.ResponseWriter, r *http.Request, chat bool, id string, words []string, usage map[string]int, includeUsage bool) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher, _ := w.(http.Flusher)
	object := "text_completion"
	if chat {
		object = "chat.completion.chunk"
	}
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	chunk := func(text string, finish any) map[string]any {
		choice := map[string]any{"index": 0, "text": text, "finish_reason": finish}
		if chat {
			choice = map[string]any{"index": 0, "delta": map[string]string{"content": text}, "finish_reason": finish}
		}
		return map[string]any{"id": id, "object": object, "created": e.now().Unix(), "model": EchoModel, "choices": []any{choice}}
	}
	for i, word := range words {
		if i > 0 {
			word = " " + word
		}
		send(chunk(word, nil))
		if e.WordDelay > 0 {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(e.WordDelay):
			}
		}
	}
	send(chunk("", "stop"))
	if includeUsage {
		send(map[string]any{"id": id, "object": object, "created": e.now().Unix(), "model": EchoModel, "choices": []any{}, "usage": usage})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
}

func (e *Echo) embed(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	text := textOf(req.Input)
	vec := make([]float64, 8)
	for i := range vec {
		h := fnv.New64a()
		fmt.Fprintf(h, "%d:%s", i, text)
		vec[i] = math.Round((float64(h.Sum64()%2000)/1000-1)*1e4) / 1e4
	}
	n := len(strings.Fields(text))
	writeJSON(w, map[string]any{"object": "list", "model": EchoModel,
		"data":  []any{map[string]any{"object": "embedding", "index": 0, "embedding": vec}},
		"usage": map[string]int{"prompt_tokens": n, "total_tokens": n}})
}

// textOf flattens a prompt or content that may be a string, a list of
// strings or a list of content parts.
func textOf(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case []any:
		var parts []string
		for _, p := range t {
			if m, ok := p.(map[string]any); ok {
				if s, ok := m["text"].(string); ok {
					parts = append(parts, s)
				}
			} else {
				parts = append(parts, textOf(p))
			}
		}
		return strings.Join(parts, " ")
	}
	return ""
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"message": msg, "type": "invalid_request_error"}})
}

package comfytest

import (
	"container/heap"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func newUUIDHex() string { return strings.ReplaceAll(newUUID(), "-", "") }

func writeJSONResponse(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readJSON reads a JSON body whatever its Content-Type, as aiohttp's
// request.json() does.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err == nil {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		http.Error(w, "400: body is not JSON: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

// routes mounts every route both bare and under /api, as add_routes
// does; /internal is a sub-application without the /api copy.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	type route struct {
		pattern string
		h       http.HandlerFunc
	}
	api := []route{
		{"GET /ws", s.serveWS},
		{"GET /embeddings", s.listJSON([]string{})},
		{"GET /extensions", s.listJSON([]string{})},
		{"GET /models", s.listJSON([]string{"checkpoints", "ddcolor", "sonic", "embeddings"})},
		{"GET /models/{folder}", s.getModels},
		{"POST /upload/image", s.uploadImage},
		{"GET /view", s.view},
		{"GET /system_stats", s.systemStats},
		{"GET /features", func(w http.ResponseWriter, _ *http.Request) { writeJSONResponse(w, 200, serverFeatures()) }},
		{"GET /prompt", s.getPrompt},
		{"POST /prompt", s.postPrompt},
		{"GET /object_info", s.objectInfo},
		{"GET /object_info/{class}", s.objectInfo},
		{"GET /history", s.getHistory},
		{"GET /history/{id}", s.getHistory},
		{"POST /history", s.postHistory},
		{"GET /queue", s.getQueue},
		{"POST /queue", s.postQueue},
		{"POST /interrupt", s.postInterrupt},
		{"POST /free", s.postFree},
		{"GET /users", s.getUsers},
		{"POST /users", s.postUsers},
		{"GET /settings", s.getSettings},
		{"GET /settings/{id}", s.getSettings},
		{"POST /settings", s.postSettings},
		{"POST /settings/{id}", s.postSettings},
		{"GET /userdata", s.listUserData},
		{"GET /userdata/{file}", s.getUserData},
		{"POST /userdata/{file}", s.postUserData},
		{"DELETE /userdata/{file}", s.deleteUserData},
	}
	for _, rt := range api {
		method, path, _ := strings.Cut(rt.pattern, " ")
		mux.HandleFunc(method+" "+path, rt.h)
		mux.HandleFunc(method+" /api"+path, rt.h)
	}
	// server.py declares the jobs routes as /api/jobs, and add_routes
	// prefixes every route with /api once more: /api/api/jobs too.
	for _, pfx := range []string{"/api", "/api/api"} {
		mux.HandleFunc("GET "+pfx+"/jobs", s.getJobs)
		mux.HandleFunc("GET "+pfx+"/jobs/{id}", s.getJob)
	}
	mux.HandleFunc("GET /internal/logs", func(w http.ResponseWriter, _ *http.Request) { writeJSONResponse(w, 200, "") })
	mux.HandleFunc("GET /internal/logs/raw", func(w http.ResponseWriter, _ *http.Request) {
		writeJSONResponse(w, 200, map[string]any{"entries": []any{}, "size": map[string]any{"cols": 80, "rows": 24}})
	})
	mux.HandleFunc("PATCH /internal/logs/subscribe", func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if readJSON(w, r, &v) {
			w.WriteHeader(http.StatusOK)
		}
	})
	mux.HandleFunc("GET /internal/folder_paths", func(w http.ResponseWriter, _ *http.Request) {
		writeJSONResponse(w, 200, map[string]any{"checkpoints": []any{[]string{filepath.Join(s.root, "models", "checkpoints")}, []string{".safetensors"}}})
	})
	mux.HandleFunc("GET /internal/files/{type}", s.internalFiles)
	mux.HandleFunc("GET /{$}", s.index)
	return s.logRequests(mux)
}

func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, ComfyUser: r.Header.Get("Comfy-User")})
		s.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) listJSON(v any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { writeJSONResponse(w, 200, v) }
}

func (s *Server) getModels(w http.ResponseWriter, r *http.Request) {
	switch r.PathValue("folder") {
	case "ddcolor":
		writeJSONResponse(w, 200, []string{"ddcolor_paper_tiny.pth", "ddcolor_paper.pth", "ddcolor_modelscope.pth", "ddcolor_artistic.pth"})
	case "checkpoints", "sonic", "embeddings":
		writeJSONResponse(w, 200, []string{})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = io.WriteString(w, `<!doctype html>
<html><head><meta charset="utf-8"><title>ComfyUI</title></head>
<body><div id="vue-app">ComfyUI emulator</div>
<script type="module">
const base = location.pathname.replace(/\/$/, "");
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + base + "/ws");
ws.onopen = () => ws.send(JSON.stringify({type: "feature_flags", data: {supports_preview_metadata: true}}));
</script></body></html>
`)
}

func (s *Server) getPrompt(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	info := s.queueInfo()
	s.mu.Unlock()
	writeJSONResponse(w, 200, info)
}

// postPrompt is POST /prompt.
func (s *Server) postPrompt(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if !readJSON(w, r, &body) {
		return
	}
	s.mu.Lock()
	number := s.number
	if n, ok := body["number"]; ok {
		f, err := convert("FLOAT", n)
		if err != nil {
			s.mu.Unlock()
			http.Error(w, "400: number is not a number", http.StatusBadRequest)
			return
		}
		number = f.(float64)
	} else {
		if front, _ := body["front"].(bool); front {
			number = -number
		}
		s.number++
	}
	s.mu.Unlock()
	graph, ok := body["prompt"].(map[string]any)
	if !ok {
		writeJSONResponse(w, 400, map[string]any{"error": errorObj("no_prompt", "No prompt provided", "No prompt provided", nil), "node_errors": map[string]any{}})
		return
	}
	id := newUUID()
	if v, ok := body["prompt_id"]; ok && v != nil {
		id = fmt.Sprint(v)
	}
	var partial []string
	if targets, ok := body["partial_execution_targets"].([]any); ok {
		partial = []string{}
		for _, t := range targets {
			partial = append(partial, fmt.Sprint(t))
		}
	}
	nodes, perr := s.parsePrompt(graph)
	var outputs []string
	nodeErrors := map[string]any{}
	if perr == nil {
		outputs, nodeErrors, perr = s.validatePrompt(nodes, partial)
	}
	if perr != nil {
		writeJSONResponse(w, 400, map[string]any{"error": perr, "node_errors": nodeErrors})
		return
	}
	extra, _ := body["extra_data"].(map[string]any)
	if extra == nil {
		extra = map[string]any{}
	}
	client := ""
	if c, ok := body["client_id"]; ok {
		extra["client_id"] = c
		client, _ = c.(string)
	}
	// Sensitive keys stay out of /queue and /history, as
	// SENSITIVE_EXTRA_DATA_KEYS in the real server.
	for _, k := range []string{"auth_token_comfy_org", "api_key_comfy_org"} {
		delete(extra, k)
	}
	extra["create_time"] = time.Now().UnixMilli()
	p := &Prompt{Number: number, ID: id, ClientID: client, Graph: graph, Extra: extra, Outputs: outputs, nodes: nodes}
	s.mu.Lock()
	if s.opts.MaxQueue > 0 && s.queue.Len() >= s.opts.MaxQueue {
		s.mu.Unlock()
		http.Error(w, "503: the queue is full", http.StatusServiceUnavailable)
		return
	}
	heap.Push(&s.queue, p)
	s.queueUpdated()
	s.mu.Unlock()
	writeJSONResponse(w, 200, map[string]any{"prompt_id": id, "number": number, "node_errors": nodeErrors})
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	s.mu.Lock()
	p.answered = true
	s.notify()
	s.mu.Unlock()
}

func (s *Server) objectInfo(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{}
	name := r.PathValue("class")
	for n, c := range s.classes {
		if name == "" || n == name {
			out[n] = s.nodeInfo(c)
		}
	}
	writeJSONResponse(w, 200, out)
}

func (s *Server) getQueue(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	running, pending := []any{}, []any{}
	for _, e := range s.executions {
		if r := s.running[e.PromptID]; r != nil && e.End.IsZero() {
			running = append(running, queueTuple(r.p))
		}
	}
	for _, p := range s.queue {
		pending = append(pending, queueTuple(p))
	}
	out := map[string]any{"queue_running": running, "queue_pending": pending}
	b, err := json.Marshal(out)
	s.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(b)
}

// postQueue is POST /queue: {"clear": true} and {"delete": [ids]}.
func (s *Server) postQueue(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Clear  bool     `json:"clear"`
		Delete []string `json:"delete"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	s.mu.Lock()
	if body.Clear {
		s.queue = nil
		s.queueUpdated()
	}
	for _, id := range body.Delete {
		for i, p := range s.queue {
			if p.ID == id {
				heap.Remove(&s.queue, i)
				s.queueUpdated()
				break
			}
		}
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// getHistory is GET /history (max_items, offset) and /history/{id}.
func (s *Server) getHistory(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]any{}
	if id := r.PathValue("id"); id != "" {
		if h, ok := s.historyMap[id]; ok {
			out[id] = h
		}
		writeOrdered(w, []string{id}, out)
		return
	}
	offset, maxItems := -1, -1
	if v := r.URL.Query().Get("max_items"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			http.Error(w, "400: max_items is not an integer", http.StatusBadRequest)
			return
		}
		maxItems = n
	}
	if v := r.URL.Query().Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			http.Error(w, "400: offset is not an integer", http.StatusBadRequest)
			return
		}
		offset = n
	}
	if offset < 0 && maxItems >= 0 {
		offset = len(s.history) - maxItems
	}
	var ids []string
	for i, id := range s.history {
		if i >= offset {
			out[id] = s.historyMap[id]
			ids = append(ids, id)
			if maxItems >= 0 && len(ids) >= maxItems {
				break
			}
		}
	}
	writeOrdered(w, ids, out)
}

// writeOrdered writes a JSON object with its keys in order, as Python
// dictionaries keep insertion order.
func writeOrdered(w http.ResponseWriter, keys []string, m map[string]any) {
	var b strings.Builder
	b.WriteString("{")
	first := true
	for _, k := range keys {
		v, ok := m[k]
		if !ok {
			continue
		}
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(v)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if !first {
			b.WriteString(", ")
		}
		first = false
		b.Write(kb)
		b.WriteString(": ")
		b.Write(vb)
	}
	b.WriteString("}")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = io.WriteString(w, b.String())
}

func (s *Server) postHistory(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Clear  bool     `json:"clear"`
		Delete []string `json:"delete"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	s.mu.Lock()
	if body.Clear {
		s.history, s.historyMap = nil, map[string]map[string]any{}
	}
	for _, id := range body.Delete {
		delete(s.historyMap, id)
		for i, h := range s.history {
			if h == id {
				s.history = append(s.history[:i:i], s.history[i+1:]...)
				break
			}
		}
	}
	s.notify()
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// postInterrupt is POST /interrupt: with {"prompt_id"} only that prompt,
// if it is running; otherwise whatever runs. A body that is not JSON
// counts as {}.
func (s *Server) postInterrupt(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	_ = json.Unmarshal(raw, &body)
	id, _ := body["prompt_id"].(string)
	s.interrupt(id)
	w.WriteHeader(http.StatusOK)
}

func (s *Server) postFree(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if !readJSON(w, r, &body) {
		return
	}
	s.mu.Lock()
	if v, _ := body["unload_models"].(bool); v {
		s.flags["unload_models"] = true
	}
	if v, _ := body["free_memory"].(bool); v {
		s.flags["free_memory"] = true
		s.cache = map[string]cached{}
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (s *Server) systemStats(w http.ResponseWriter, _ *http.Request) {
	writeJSONResponse(w, 200, map[string]any{
		"system": map[string]any{"os": "posix", "ram_total": 64 << 30, "ram_free": 48 << 30,
			"comfyui_version": "0.3.64", "required_frontend_version": "1.27.10",
			"python_version": "3.12.3 (emulated)", "pytorch_version": "2.8.0+cu128",
			"embedded_python": false, "argv": []string{"main.py"}},
		"devices": []any{map[string]any{"name": "cuda:0 NVIDIA Emulated GPU : cudaMallocAsync", "type": "cuda", "index": 0,
			"vram_total": 24 << 30, "vram_free": 23 << 30, "torch_vram_total": 0, "torch_vram_free": 0}},
	})
}

func (s *Server) internalFiles(w http.ResponseWriter, r *http.Request) {
	kind := r.PathValue("type")
	if kind != "input" && kind != "output" && kind != "temp" {
		writeJSONResponse(w, 400, map[string]any{"error": "Invalid directory type"})
		return
	}
	entries, _ := os.ReadDir(s.dir(kind))
	names := []string{}
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	writeJSONResponse(w, 200, names)
}

func contentType(name string) string {
	if t := mime.TypeByExtension(strings.ToLower(filepath.Ext(name))); t != "" {
		return t
	}
	return "application/octet-stream"
}

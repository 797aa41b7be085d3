package gradiotest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// formatter turns a message into SSE text; "" skips it.
type formatter func(m map[string]any) string

// queueDataFormat is the queue/data stream's: every message as JSON.
func queueDataFormat(m map[string]any) string {
	return "data: " + compactJSON(m) + "\n\n"
}

// callFormat is the /call/{api_name}/{event_id} stream's: named events
// with only the data a simple client needs.
func callFormat(m map[string]any) string {
	var name string
	var data any
	switch m["msg"] {
	case "process_completed", "process_generating":
		out, _ := m["output"].(map[string]any)
		name, data = "error", out
		if m["success"] == true {
			name, data = "generating", out["data"]
			if m["msg"] == "process_completed" {
				name = "complete"
			}
		}
	case "heartbeat":
		name = "heartbeat"
	case "unexpected_error":
		name, data = "error", m["message"]
	default:
		return ""
	}
	return fmt.Sprintf("event: %s\ndata: %s\n\n", name, compactJSON(data))
}

func compactJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "null"
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func startSSE(w http.ResponseWriter) (flush func()) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	flush = func() { rc.Flush() }
	flush()
	return flush
}

// handleQueueData is GET /gradio_api/queue/data?session_hash=.
func (s *Server) handleQueueData(w http.ResponseWriter, r *http.Request) {
	hash, ok := r.URL.Query()["session_hash"]
	if !ok {
		writeDetail(w, http.StatusUnprocessableEntity, []any{map[string]any{
			"type": "missing", "loc": []any{"query", "session_hash"}, "msg": "Field required", "input": nil,
		}})
		return
	}
	s.stream(w, r, hash[0], queueDataFormat)
}

// stream is queue_data_helper: it sends the session's messages until the
// last pending event of the session has completed, then close_stream.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, hash string, format formatter) {
	flush := startSSE(w)
	write := func(m map[string]any) bool {
		text := format(m)
		if text == "" {
			return true
		}
		if _, err := w.Write([]byte(text)); err != nil {
			return false
		}
		flush()
		return true
	}
	s.mu.Lock()
	sess := s.sessions[hash]
	s.mu.Unlock()
	if sess == nil {
		write(map[string]any{"msg": "unexpected_error", "event_id": nil, "message": "404: Not Found", "session_not_found": true, "success": false})
		return
	}
	beat := time.NewTicker(s.opts.HeartbeatInterval)
	defer beat.Stop()
	for {
		s.mu.Lock()
		if len(sess.msgs) == 0 {
			notify := sess.notify
			s.mu.Unlock()
			select {
			case <-notify:
			case <-beat.C:
				s.mu.Lock()
				s.putLocked(hash, map[string]any{"msg": "heartbeat", "event_id": nil})
				s.mu.Unlock()
			case <-r.Context().Done():
				s.mu.Lock()
				s.cleanEventsLocked(hash)
				s.mu.Unlock()
				return
			case <-s.stop:
				write(map[string]any{"msg": "unexpected_error", "event_id": nil, "message": "Server stopped unexpectedly.", "session_not_found": false, "success": false})
				return
			}
			continue
		}
		m := sess.msgs[0]
		sess.msgs = sess.msgs[1:]
		last := false
		if id, ok := m["event_id"].(string); ok && m["msg"] == "process_completed" {
			delete(sess.pending, id)
			last = len(sess.pending) == 0
		}
		s.mu.Unlock()
		if !write(m) {
			s.mu.Lock()
			s.cleanEventsLocked(hash)
			s.mu.Unlock()
			return
		}
		if last {
			write(map[string]any{"msg": "close_stream", "event_id": nil})
			return
		}
	}
}

// handleCallPost is POST /gradio_api/call/{api_name}: the simple API's
// queue/join, with data only.
func (s *Server) handleCallPost(w http.ResponseWriter, r *http.Request, apiName string) {
	var body struct {
		Data        *[]any  `json:"data"`
		SessionHash *string `json:"session_hash"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeValidation(w, []any{"body"}, "JSON decode error")
		return
	}
	if body.Data == nil {
		writeValidation(w, []any{"body", "data"}, "Field required")
		return
	}
	fn, ok := s.endpointByName(apiName)
	if !ok {
		// FnIndexInferError is not handled by Gradio.
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	hash := ""
	if body.SessionHash != nil {
		hash = *body.SessionHash
	}
	id := s.push(r, hash, fn, *body.Data, true)
	writeJSON(w, http.StatusOK, map[string]any{"event_id": id})
}

// handleCallGet is GET /gradio_api/call/{api_name}/{event_id}: the stream
// of the event's session (whatever api_name says).
func (s *Server) handleCallGet(w http.ResponseWriter, r *http.Request, rest string) {
	rest = strings.Trim(rest, "/")
	i := strings.LastIndex(rest, "/")
	if i < 0 {
		writeDetail(w, http.StatusNotFound, "Not Found")
		return
	}
	eventID := rest[i+1:]
	s.mu.Lock()
	hash := eventID
	if ev, ok := s.events[eventID]; ok {
		hash = ev.session
	} else {
		for h, sess := range s.sessions {
			if sess.pending[eventID] {
				hash = h
				break
			}
		}
	}
	s.mu.Unlock()
	s.stream(w, r, hash, callFormat)
}

// handleHeartbeat is GET /gradio_api/heartbeat/{session_hash}.
func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	flush := startSSE(w)
	beat := time.NewTicker(s.opts.HeartbeatInterval)
	defer beat.Stop()
	for {
		if _, err := w.Write([]byte("data: ALIVE\n\n")); err != nil {
			return
		}
		flush()
		select {
		case <-beat.C:
		case <-r.Context().Done():
			return
		case <-s.stop:
			return
		}
	}
}

package gradiotest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"
)

// session is what Gradio keeps per session_hash: its pending messages
// (pending_messages_per_session) and pending event ids
// (pending_event_ids_session).
type session struct {
	msgs    []map[string]any
	notify  chan struct{} // closed when a message arrives
	pending map[string]bool
}

// group is a concurrency group (EventQueue): here one per function.
type group struct {
	queue      []*event
	current    int
	limit      int
	startTimes map[*event]time.Time
	avg        *processTime
}

type processTime struct {
	total float64
	count int
}

func (p *processTime) value() any {
	if p.count == 0 {
		return nil
	}
	return p.total / float64(p.count)
}

// event is a queued or running call (queueing.Event).
type event struct {
	id      string
	session string
	fn      int
	data    []any
	simple  bool   // joined through /call: outputs are never diffs
	root    string // the app's root URL as the joining request saw it
	alive   bool
	cancel  context.CancelFunc
	exec    *Execution
	running *Running
}

// joinBody is PredictBody.
type joinBody struct {
	SessionHash *string `json:"session_hash"`
	EventID     *string `json:"event_id"`
	Data        *[]any  `json:"data"`
	EventData   any     `json:"event_data"`
	FnIndex     *int    `json:"fn_index"`
	TriggerID   *int    `json:"trigger_id"`
}

// handleJoin is POST /gradio_api/queue/join.
func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request) {
	var body joinBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeValidation(w, []any{"body"}, "JSON decode error")
		return
	}
	if body.Data == nil {
		writeValidation(w, []any{"body", "data"}, "Field required")
		return
	}
	if body.SessionHash == nil {
		writeDetail(w, http.StatusBadRequest, "Session hash not found.")
		return
	}
	if body.FnIndex == nil {
		writeDetail(w, http.StatusBadRequest, "No function index provided.")
		return
	}
	if *body.FnIndex < 0 || *body.FnIndex >= len(s.fns) {
		// Gradio fails on a KeyError here.
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	id := s.push(r, *body.SessionHash, *body.FnIndex, *body.Data, false)
	writeJSON(w, http.StatusOK, map[string]any{"event_id": id})
}

// push is Queue.push: the event joins its function's queue and gets an
// estimation. An empty session hash becomes the event's id.
func (s *Server) push(r *http.Request, sessionHash string, fn int, data []any, simple bool) string {
	ev := &event{id: newID(), session: sessionHash, fn: fn, data: data, simple: simple, alive: true}
	if ev.session == "" {
		ev.session = ev.id
	}
	ev.root = rootURL(r, apiCallPath(r), s.opts.RootPath)
	ev.exec = &Execution{
		EventID: ev.id, SessionHash: ev.session, FnIndex: fn, APIName: s.fns[fn].apiName,
		Data: data, Header: r.Header.Clone(), Enqueued: time.Now(),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessionLocked(ev.session)
	sess.pending[ev.id] = true
	s.events[ev.id] = ev
	g := s.groups[fn]
	g.queue = append(g.queue, ev)
	s.changedLocked()
	s.broadcastEstimationsLocked(fn, len(g.queue)-1)
	s.dispatchLocked()
	return ev.id
}

func (s *Server) sessionLocked(hash string) *session {
	sess, ok := s.sessions[hash]
	if !ok {
		sess = &session{notify: make(chan struct{}), pending: map[string]bool{}}
		s.sessions[hash] = sess
	}
	return sess
}

// sendLocked is Queue.send_message: nothing is sent for an event whose
// stream went away.
func (s *Server) sendLocked(ev *event, m map[string]any) {
	if !ev.alive {
		return
	}
	m["event_id"] = ev.id
	s.putLocked(ev.session, m)
}

func (s *Server) send(ev *event, m map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sendLocked(ev, m)
}

// putLocked appends m to the session's pending messages.
func (s *Server) putLocked(hash string, m map[string]any) {
	sess := s.sessionLocked(hash)
	sess.msgs = append(sess.msgs, m)
	close(sess.notify)
	sess.notify = make(chan struct{})
}

// broadcastEstimationsLocked is Queue.broadcast_estimations: every event
// of the group from rank after on learns its rank, queue size and eta.
func (s *Server) broadcastEstimationsLocked(fn, after int) {
	g := s.groups[fn]
	avg := g.avg.value()
	var tillWorker any = 0.0
	if g.current == g.limit {
		if avg == nil {
			tillWorker = nil
		} else {
			first := time.Time{}
			for _, st := range g.startTimes {
				end := st.Add(time.Duration(avg.(float64) * float64(time.Second)))
				if first.IsZero() || end.Before(first) {
					first = end
				}
			}
			if !first.IsZero() {
				tillWorker = max(time.Until(first).Seconds(), 0)
			}
		}
	}
	var waitSoFar any = 0.0
	for rank, ev := range g.queue {
		var eta any
		if avg != nil && waitSoFar != nil && tillWorker != nil {
			eta = avg.(float64) + waitSoFar.(float64) + tillWorker.(float64)
		}
		if rank >= after {
			s.sendLocked(ev, map[string]any{"msg": "estimation", "rank": rank, "queue_size": len(g.queue), "rank_eta": eta})
		}
		if waitSoFar != nil && avg != nil {
			waitSoFar = waitSoFar.(float64) + avg.(float64)/float64(g.limit)
		} else {
			waitSoFar = nil
		}
	}
}

// dispatchLocked starts the first events of every group with room, as
// Queue.start_processing does, and tells the events still waiting their
// new rank.
func (s *Server) dispatchLocked() {
	if s.closed {
		return
	}
	for fn, g := range s.groups {
		for g.current < g.limit && len(g.queue) > 0 {
			ev := g.queue[0]
			g.queue = g.queue[1:]
			g.current++
			s.changedLocked()
			if g.startTimes == nil {
				g.startTimes = map[*event]time.Time{}
			}
			g.startTimes[ev] = time.Now()
			ctx, cancel := context.WithCancel(context.Background())
			ev.cancel = cancel
			s.calls.Add(1)
			go func() {
				defer s.calls.Done()
				s.process(ctx, ev)
			}()
			s.broadcastEstimationsLocked(fn, 0)
		}
	}
}

// process is Queue.process_events for one event.
func (s *Server) process(ctx context.Context, ev *event) {
	g := s.groups[ev.fn]
	begin := time.Now()
	s.mu.Lock()
	alive := ev.alive
	if alive {
		s.sendLocked(ev, map[string]any{"msg": "process_starts", "eta": g.avg.value()})
		ev.exec.Started = begin
		s.execs = append(s.execs, ev.exec)
	}
	s.mu.Unlock()
	defer s.finish(ev)
	if !alive {
		return
	}
	out, err := s.call(ctx, ev)
	if ctx.Err() != nil {
		// Cancelled: /cancel sends the completion message itself.
		s.mu.Lock()
		ev.exec.Outcome, ev.exec.Ended = Cancelled, time.Now()
		s.mu.Unlock()
		return
	}
	duration := time.Since(begin).Seconds()
	s.mu.Lock()
	defer s.mu.Unlock()
	ev.exec.Ended = time.Now()
	if err != nil {
		content := s.errorPayload(err)
		title, ok := content["title"]
		if !ok {
			title = "Error"
		}
		ev.exec.Outcome, ev.exec.Error = Failed, err.Error()
		s.sendLocked(ev, map[string]any{
			"msg": "process_completed", "output": content, "success": false, "title": title,
			"used_cache": nil, "cache_duration": nil, "avg_time": nil,
		})
		return
	}
	g.avg.total += duration
	g.avg.count++
	ev.exec.Outcome = Completed
	output := outputData(out, duration, g.avg.value(), false)
	s.sendLocked(ev, map[string]any{
		"msg": "process_completed", "output": output, "success": true, "title": nil,
		"used_cache": nil, "cache_duration": output["duration"], "avg_time": output["average_duration"],
	})
}

// outputData is what Blocks.process_api returns, without the iterator.
func outputData(data []any, duration float64, avg any, generating bool) map[string]any {
	return map[string]any{
		"data": data, "is_generating": generating, "duration": duration, "average_duration": avg,
		"render_config": nil, "changed_state_ids": []any{}, "used_cache": nil,
	}
}

// finish frees the event's slot and starts the next one.
func (s *Server) finish(ev *event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[ev.fn]
	g.current--
	delete(g.startTimes, ev)
	delete(s.events, ev.id)
	if ev.cancel != nil {
		ev.cancel()
	}
	s.dispatchLocked()
}

// appError is gr.Error: its message always reaches the client.
type appError struct{ message string }

func (e appError) Error() string { return e.message }

// errorPayload is utils.error_payload.
func (s *Server) errorPayload(err error) map[string]any {
	var app appError
	if errors.As(err, &app) {
		return map[string]any{"error": app.message, "duration": 10, "visible": true, "title": "Error"}
	}
	if s.opts.ShowError {
		return map[string]any{"error": err.Error(), "visible": true}
	}
	return map[string]any{"error": nil}
}

// cancelBody is CancelBody.
type cancelBody struct {
	SessionHash *string `json:"session_hash"`
	FnIndex     *int    `json:"fn_index"`
	EventID     *string `json:"event_id"`
}

// handleCancel is POST /gradio_api/cancel: it cancels the running call of
// session_hash and fn_index (whatever its event id), drops event_id from
// the queue and, when that event is still pending in the session, sends
// its process_completed.
func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	var body cancelBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeValidation(w, []any{"body"}, "JSON decode error")
		return
	}
	for name, v := range map[string]bool{"session_hash": body.SessionHash == nil, "fn_index": body.FnIndex == nil, "event_id": body.EventID == nil} {
		if v {
			writeValidation(w, []any{"body", name}, "Field required")
			return
		}
	}
	s.mu.Lock()
	for _, ev := range s.events {
		if ev.session == *body.SessionHash && ev.fn == *body.FnIndex && ev.cancel != nil {
			ev.cancel()
		}
	}
	sess := s.sessions[*body.SessionHash]
	running := sess != nil && sess.pending[*body.EventID]
	if ev, ok := s.events[*body.EventID]; ok && ev.cancel == nil {
		g := s.groups[ev.fn]
		if i := slices.Index(g.queue, ev); i >= 0 {
			g.queue = slices.Delete(g.queue, i, i+1)
			delete(s.events, ev.id)
			s.changedLocked()
		}
	}
	if running {
		s.putLocked(*body.SessionHash, map[string]any{
			"msg": "process_completed", "event_id": *body.EventID, "output": map[string]any{}, "success": true,
			"title": nil, "used_cache": nil, "cache_duration": nil, "avg_time": nil,
		})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

// handleReset is POST /gradio_api/reset, a no-op in Gradio.
func (s *Server) handleReset(w http.ResponseWriter, r *http.Request) {
	var body struct {
		EventID *string `json:"event_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.EventID == nil {
		writeValidation(w, []any{"body", "event_id"}, "Field required")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

// cleanEventsLocked is Queue.clean_events for a session whose stream
// disconnected: its running events stop sending, its waiting ones leave.
func (s *Server) cleanEventsLocked(hash string) {
	sess := s.sessions[hash]
	for _, ev := range s.events {
		if ev.session != hash {
			continue
		}
		if ev.cancel != nil {
			ev.alive = false
			continue
		}
		g := s.groups[ev.fn]
		if i := slices.Index(g.queue, ev); i >= 0 {
			g.queue = slices.Delete(g.queue, i, i+1)
			s.changedLocked()
		}
		delete(s.events, ev.id)
		if sess != nil {
			delete(sess.pending, ev.id)
		}
	}
}

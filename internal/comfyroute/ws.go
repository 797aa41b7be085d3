package comfyroute

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/coder/websocket"

	"github.com/tollgate/tollgate/internal/comfyui"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// A browser's /ws ends at the gateway. Its own messages come from two
// places: the messages of the user's prompts, which the jobs' backend
// reads on a socket of its own per prompt (so ComfyUI sends them, its
// previews included, to nobody else) and which the tap hands to the
// user's sockets whose clientId queued the prompt; and a socket the
// gateway opens to ComfyUI per browser socket, under a clientId scoped to
// the user, which carries the feature_flags exchange and nothing else
// (ComfyUI's "status" is the gateway's own, with the user's
// queue_remaining; broadcasts may be of another user's prompt).

// wsMsg is one websocket message.
type wsMsg struct {
	typ  websocket.MessageType
	data []byte
}

// socket is one browser socket.
type socket struct {
	owner    string
	clientID string
	out      chan wsMsg
}

// promptState is what the hub knows of one prompt's messages.
type promptState struct {
	owner    string
	clientID string
	followed bool    // the route waits for its job's end (see follow)
	ended    bool    // an execution_success/_error/_interrupted came
	idle     bool    // executing {node: null} came
	held     []wsMsg // messages from the end message on, sent once the job ended in the store
}

// hub is the route's browser sockets by user, and the prompts whose
// messages it relays.
type hub struct {
	mu      sync.Mutex
	users   map[string]map[*socket]struct{}
	prompts map[string]*promptState
	closed  bool
	conns   map[*websocket.Conn]struct{}
	// finished are the prompts whose end was sent, the latest first out
	// of ring: a message that comes after it is dropped.
	finished map[string]bool
	ring     []string
}

func newHub() *hub {
	return &hub{users: map[string]map[*socket]struct{}{}, prompts: map[string]*promptState{}, conns: map[*websocket.Conn]struct{}{},
		finished: map[string]bool{}}
}

// maxSockets bounds one user's sockets on a route (each holds one to
// ComfyUI).
const maxSockets = 32

// join adds s to its owner's sockets, unless the owner has maxSockets
// already (full) or the hub is closed: a socket counts from before its
// upstream is dialed, so sockets opened at once cannot pass the bound
// together.
func (h *hub) join(s *socket) (ok, full bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false, false
	}
	if len(h.users[s.owner]) >= maxSockets {
		return false, true
	}
	if h.users[s.owner] == nil {
		h.users[s.owner] = map[*socket]struct{}{}
	}
	h.users[s.owner][s] = struct{}{}
	return true, false
}

// track records connections to close when the hub closes; false when it
// has closed.
func (h *hub) track(conns ...*websocket.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	for _, c := range conns {
		h.conns[c] = struct{}{}
	}
	return true
}

func (h *hub) remove(s *socket, conns ...*websocket.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.users[s.owner], s)
	if len(h.users[s.owner]) == 0 {
		delete(h.users, s.owner)
	}
	for _, c := range conns {
		delete(h.conns, c)
	}
}

func (h *hub) closeAll() {
	h.mu.Lock()
	h.closed = true
	conns := h.conns
	h.conns = map[*websocket.Conn]struct{}{}
	h.mu.Unlock()
	for c := range conns {
		_ = c.Close(websocket.StatusGoingAway, "the gateway is stopping")
	}
}

// expect marks a prompt about to be queued with clientID as followed:
// its end is held until the route sends it.
func (h *hub) expect(id string, o tollgate.Owner, clientID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.prompts[id] = &promptState{owner: ownerKey(o), clientID: clientID, followed: true}
}

// forget drops a prompt that was never queued.
func (h *hub) forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.prompts, id)
}

// prompt returns j's state, created on first use.
func (h *hub) prompt(j *tollgate.Job) *promptState {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.prompts[j.ID]
	if st == nil {
		var in struct {
			ClientID string `json:"client_id"`
		}
		_ = json.Unmarshal(j.Input, &in)
		st = &promptState{owner: ownerKey(j.Owner), clientID: in.ClientID}
		h.prompts[j.ID] = st
	}
	return st
}

// send queues m on a socket without waiting: a socket that falls behind
// loses messages, never holds up the prompt's reader.
func (s *socket) send(m wsMsg) {
	select {
	case s.out <- m:
	default:
	}
}

// toPrompt sends m to the sockets of j's owner whose clientId queued j
// (every socket of the owner when j was queued without one).
func (h *hub) toPrompt(j *tollgate.Job, m wsMsg) { h.send(h.prompt(j), m) }

// send sends m to the sockets of a prompt.
func (h *hub) send(st *promptState, m wsMsg) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.users[st.owner] {
		if st.clientID == "" || s.clientID == st.clientID {
			s.send(m)
		}
	}
}

// toUser sends m to every socket of the owner.
func (h *hub) toUser(o tollgate.Owner, m wsMsg) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.users[ownerKey(o)] {
		s.send(m)
	}
}

func textFrame(typ string, data any) wsMsg {
	b, _ := json.Marshal(map[string]any{"type": typ, "data": data})
	return wsMsg{typ: websocket.MessageText, data: b}
}

// sendStatus tells the owner's sockets their queue_remaining.
func (rt *Route) sendStatus(ctx context.Context, o tollgate.Owner) {
	rt.hub.toUser(o, textFrame("status", map[string]any{"status": execInfo(rt.remaining(ctx, o))}))
}

// tap receives every message of a prompt the backend runs: those naming
// the prompt, and previews (binary), go to its owner; ComfyUI's
// broadcasts on the backend's socket do not.
func (rt *Route) tap(run *tollgate.JobRun, typ websocket.MessageType, data []byte) {
	rt.hub.mu.Lock()
	finished := rt.hub.finished[run.Job.ID]
	rt.hub.mu.Unlock()
	if finished {
		return // its end was sent
	}
	if typ != websocket.MessageText {
		rt.hub.toPrompt(run.Job, wsMsg{typ: typ, data: data})
		return
	}
	var f struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	if json.Unmarshal(data, &f) != nil {
		return
	}
	if id, _ := f.Data["prompt_id"].(string); id != run.Job.ID {
		return
	}
	if f.Type == "executed" {
		if out, ok := f.Data["output"].(map[string]any); ok {
			rt.files.addOutputs(run.Job.Owner, run.Upstream, out)
		}
	}
	m := wsMsg{typ: typ, data: data}
	st := rt.hub.prompt(run.Job)
	rt.hub.mu.Lock()
	switch f.Type {
	case "execution_success", "execution_error", "execution_interrupted":
		st.ended = true
	case "executing":
		st.idle = st.idle || f.Data["node"] == nil
	}
	switch {
	case st.ended && st.followed:
		// The end is told once the job's end is stored, so a client that
		// reads /history on it finds the prompt there.
		st.held = append(st.held, m)
		rt.hub.mu.Unlock()
		return
	case st.ended:
		// A prompt no one follows (queued through the predictions API):
		// its end is told as it comes, and nothing after it.
		rt.hub.markFinished(run.Job.ID)
	}
	rt.hub.mu.Unlock()
	rt.hub.send(st, m)
}

// markFinished forgets a prompt whose end was sent; h.mu is held.
func (h *hub) markFinished(id string) {
	delete(h.prompts, id)
	h.finished[id] = true
	h.ring = append(h.ring, id)
	if len(h.ring) > 4096 {
		delete(h.finished, h.ring[0])
		h.ring = h.ring[1:]
	}
}

// finish sends a prompt's end: the messages held since ComfyUI told it,
// or an execution_error saying why it failed when ComfyUI never did;
// then the owner's queue state, and executing {node: null} when ComfyUI's
// was not seen.
func (rt *Route) finish(j *tollgate.Job) {
	st := rt.hub.prompt(j)
	rt.hub.mu.Lock()
	held, ended, idle := st.held, st.ended, st.idle
	st.held = nil
	rt.hub.markFinished(j.ID)
	rt.hub.mu.Unlock()
	for _, m := range held {
		rt.hub.send(st, m)
	}
	if !ended && j.Status == tollgate.JobFailed {
		rt.hub.send(st, textFrame("execution_error", map[string]any{"prompt_id": j.ID, "node_id": "", "node_type": "",
			"executed": []string{}, "exception_message": j.Error, "exception_type": "tollgate", "traceback": []string{},
			"current_inputs": map[string]any{}, "current_outputs": map[string]any{}, "timestamp": j.CompletedAt.UnixMilli()}))
	}
	rt.sendStatus(rt.ctx, j.Owner)
	if !idle && !j.StartedAt.IsZero() {
		rt.hub.send(st, textFrame("executing", map[string]any{"node": nil, "display_node": nil, "prompt_id": j.ID}))
	}
}

// serveWS serves a browser's /ws. The session cookie's Origin check is
// the authenticator's, so the handshake's own is skipped.
func (rt *Route) serveWS(w http.ResponseWriter, r *http.Request, p *tollgate.Principal) error {
	o := owner(p)
	clientID := r.URL.Query().Get("clientId")
	if clientID == "" || len(clientID) > 128 {
		clientID = strings.ReplaceAll(comfyui.NewUUID(), "-", "")
	}
	s := &socket{owner: ownerKey(o), clientID: clientID, out: make(chan wsMsg, 512)}
	if ok, full := rt.hub.join(s); full {
		return &tollgate.Error{Code: tollgate.ERateLimited, Message: fmt.Sprintf("at most %d sockets per user on this route", maxSockets), RetryAfter: 5}
	} else if !ok {
		return tollgate.Errorf(tollgate.EUnavailable, "the gateway is stopping")
	}
	defer rt.hub.remove(s)
	var up *websocket.Conn
	var err error
	for _, base := range rt.model.Upstreams { // the first that answers
		upURL := "ws" + strings.TrimPrefix(strings.TrimSuffix(base, "/"), "http") + "/ws?clientId=" +
			url.QueryEscape(scopedClientID(o, clientID))
		up, _, err = websocket.Dial(r.Context(), upURL, &websocket.DialOptions{HTTPClient: rt.client,
			HTTPHeader: http.Header{"Comfy-User": {comfyui.ComfyUser(o)}}})
		if err == nil {
			break
		}
	}
	if err != nil {
		return tollgate.Errorf(tollgate.EUpstream, "ComfyUI's websocket is unavailable")
	}
	up.SetReadLimit(32 << 20)
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		_ = up.CloseNow()
		return nil // Accept answered the client
	}
	conn.SetReadLimit(1 << 20)
	// The greeting first, before anything queued on s: the SDK and the
	// frontend take their sid from it.
	greeting := textFrame("status", map[string]any{"status": execInfo(rt.remaining(r.Context(), o)), "sid": clientID})
	if err := conn.Write(r.Context(), greeting.typ, greeting.data); err != nil || !rt.hub.track(conn, up) {
		_ = up.CloseNow()
		_ = conn.Close(websocket.StatusGoingAway, "the gateway is stopping")
		return nil
	}
	defer rt.hub.remove(s, conn, up)
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { // upstream → browser, filtered
		defer cancel()
		for {
			typ, data, err := up.Read(ctx)
			if err != nil {
				return
			}
			if typ == websocket.MessageText && broadcastPasses(data) {
				s.send(wsMsg{typ: typ, data: data})
			}
		}
	})
	wg.Go(func() { // browser → upstream: text only (feature_flags)
		defer cancel()
		for {
			typ, data, err := conn.Read(ctx)
			if err != nil {
				return
			}
			if typ == websocket.MessageText {
				if err := up.Write(ctx, typ, data); err != nil {
					return
				}
			}
		}
	})
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case m := <-s.out:
			if err := conn.Write(ctx, m.typ, m.data); err != nil {
				done = true
			}
		}
	}
	cancel()
	_ = up.CloseNow()
	_ = conn.Close(websocket.StatusNormalClosure, "")
	wg.Wait()
	return nil
}

// broadcastPasses reports whether a message of the gateway's own
// ComfyUI socket may reach the browser: only ComfyUI's feature_flags
// answer. The rest is ComfyUI's "status" (the gateway sends the user's
// own) or what custom nodes send without a sid, which ComfyUI hands to
// every socket whoever's prompt it came from (a node's feedback of a
// prompt's text): it may be another user's.
func broadcastPasses(data []byte) bool {
	var f struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(data, &f) == nil && f.Type == "feature_flags"
}

// scopedClientID is the clientId of a browser socket on ComfyUI: scoped
// to the user, so two users' sockets never share (or take over) a sid.
func scopedClientID(o tollgate.Owner, clientID string) string {
	sum := sha256.Sum256([]byte(ownerKey(o)))
	return "tgui-" + hex.EncodeToString(sum[:8]) + "-" + clientID
}

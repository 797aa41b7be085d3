package comfytest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Binary event types of protocol.py.
const (
	PreviewImage             = 1
	UnencodedPreviewImage    = 2
	PreviewImageWithMetadata = 4
)

// serverFeatures is comfy_api/feature_flags.SERVER_FEATURE_FLAGS.
func serverFeatures() map[string]any {
	return map[string]any{"supports_preview_metadata": true, "max_upload_size": 100 * 1024 * 1024}
}

type wsConn struct {
	c     *websocket.Conn
	flags map[string]any // the client's feature_flags
}

type outMsg struct {
	sid     string // "" for everyone
	text    []byte
	preview []byte         // a JPEG preview, framed per client
	meta    map[string]any // its metadata for clients that asked for it
}

// hub is PromptServer's sockets and its publish_loop: one ordered queue
// of messages, each sent to one sid or to every socket.
type hub struct {
	ctx     context.Context
	mu      sync.Mutex
	sockets map[string]*wsConn
	queue   []outMsg
	wake    chan struct{}
	done    sync.WaitGroup
}

func newHub(ctx context.Context) *hub {
	h := &hub{ctx: ctx, sockets: map[string]*wsConn{}, wake: make(chan struct{}, 1)}
	h.done.Add(1)
	go h.publish()
	return h
}

func (h *hub) push(m outMsg) {
	h.mu.Lock()
	h.queue = append(h.queue, m)
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// send queues {"type": event, "data": data} for sid, or everyone when
// sid is "".
func (h *hub) send(event string, data any, sid string) {
	b, _ := json.Marshal(map[string]any{"type": event, "data": data})
	h.push(outMsg{sid: sid, text: b})
}

func (h *hub) preview(jpeg []byte, sid string, meta map[string]any) {
	h.push(outMsg{sid: sid, preview: jpeg, meta: meta})
}

func (h *hub) publish() {
	defer h.done.Done()
	for {
		h.mu.Lock()
		if len(h.queue) == 0 {
			h.mu.Unlock()
			select {
			case <-h.ctx.Done():
				return
			case <-h.wake:
				continue
			}
		}
		m := h.queue[0]
		h.queue = h.queue[1:]
		var targets []target
		if m.sid == "" {
			for _, c := range h.sockets {
				targets = append(targets, target{c.c, c.flags["supports_preview_metadata"] == true})
			}
		} else if c := h.sockets[m.sid]; c != nil {
			targets = append(targets, target{c.c, c.flags["supports_preview_metadata"] == true})
		}
		h.mu.Unlock()
		for _, t := range targets {
			h.write(t, m)
		}
	}
}

type target struct {
	c        *websocket.Conn
	withMeta bool
}

func (h *hub) write(t target, m outMsg) {
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	if m.text != nil {
		_ = t.c.Write(ctx, websocket.MessageText, m.text)
		return
	}
	_ = t.c.Write(ctx, websocket.MessageBinary, previewFrame(m.preview, m.meta, t.withMeta))
}

// previewFrame is send_image (type 1: a 4-byte event type, a 4-byte
// image type, 1 = JPEG, then the JPEG) or, for clients that announced
// supports_preview_metadata, send_image_with_metadata (type 4: event
// type, metadata length, metadata JSON, JPEG).
func previewFrame(jpeg []byte, meta map[string]any, withMeta bool) []byte {
	if !withMeta {
		b := binary.BigEndian.AppendUint32(nil, PreviewImage)
		b = binary.BigEndian.AppendUint32(b, 1)
		return append(b, jpeg...)
	}
	m := map[string]any{}
	for k, v := range meta {
		m[k] = v
	}
	m["image_type"] = "image/jpeg"
	mj, _ := json.Marshal(m)
	b := binary.BigEndian.AppendUint32(nil, PreviewImageWithMetadata)
	b = binary.BigEndian.AppendUint32(b, uint32(len(mj)))
	return append(append(b, mj...), jpeg...)
}

func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.sockets {
		_ = c.c.CloseNow()
	}
}

func (h *hub) wait() { h.done.Wait() }

// serveWS is the /ws handler: the socket replaces any other with the
// same clientId, gets "status" with its sid, then the feature_flags
// exchange if its first message asks for it.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	c.SetReadLimit(1 << 20)
	sid := r.URL.Query().Get("clientId")
	if sid == "" {
		sid = newUUIDHex()
	}
	conn := &wsConn{c: c, flags: map[string]any{}}
	h := s.hub
	h.mu.Lock()
	h.sockets[sid] = conn
	h.mu.Unlock()
	defer func() {
		// As in server.py, closing pops the sid even when a newer socket
		// took it over.
		h.mu.Lock()
		delete(h.sockets, sid)
		h.mu.Unlock()
		_ = c.CloseNow()
	}()
	ctx := s.ctx
	s.mu.Lock()
	status := map[string]any{"status": s.queueInfo(), "sid": sid}
	var lastNode string
	for _, run := range s.running {
		if run.p.ClientID == sid {
			lastNode = run.lastNode
		}
	}
	s.mu.Unlock()
	if writeJSON(ctx, c, "status", status) != nil {
		return
	}
	if lastNode != "" && writeJSON(ctx, c, "executing", map[string]any{"node": lastNode}) != nil {
		return
	}
	first := true
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			continue
		}
		var msg struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		if json.Unmarshal(data, &msg) == nil && first && msg.Type == "feature_flags" {
			h.mu.Lock()
			if msg.Data != nil {
				conn.flags = msg.Data
			}
			h.mu.Unlock()
			h.send("feature_flags", serverFeatures(), sid)
		}
		first = false
	}
}

func writeJSON(ctx context.Context, c *websocket.Conn, event string, data any) error {
	b, _ := json.Marshal(map[string]any{"type": event, "data": data})
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.Write(ctx, websocket.MessageText, b)
}

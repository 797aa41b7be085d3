package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// A gradio route serves a Gradio app to many users. Gradio keys event
// streams only by session_hash and serves every file under its temp dir
// to whoever names it, so the gateway keeps each user apart:
//
//   - every session_hash a client sends (queue/join, queue/data,
//     heartbeat, cancel) is prefixed with a scope derived from the
//     caller's tenant and user, so two users never share a session on
//     the app; queue/data and cancel with a hash the caller never joined
//     with, and cancel or reset of an event that is not the caller's, are
//     refused (404);
//   - /gradio_api/file= (and /file=) serves only paths the caller uploaded
//     (from /gradio_api/upload answers) or received (FileData in the
//     caller's event streams); queue/join and call data may name only
//     such paths;
//   - queue/join, call and run are the metered calls: admissions (rate
//     limits, budgets) run for them alone, and a queued call's usage
//     record stays open until its process_completed passes on the
//     caller's stream, with the app's duration as GPU time;
//   - /gradio_api/call/{api_name}/{event_id} and /gradio_api/stream/{event_id}/
//     serve only the caller's events; /gradio_api/proxy= and the MCP
//     routes are not served.
//
// The app must know its public root, as behind any proxy: launch it with
// root_path set to the route's path (GRADIO_ROOT_PATH=/tts); the gateway
// sends X-Forwarded-Host, X-Forwarded-Proto and X-Forwarded-Prefix.
//
// What is remembered lives in this process (not shared by replicas) and is
// bounded per user: the oldest entries go first.

// gradioAPI is Gradio's API prefix.
const gradioAPI = "/gradio_api"

// gradioMaxEntries bounds each of a user's remembered sets.
const gradioMaxEntries = 4096

var gradioHash = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// gradioGuard is the per-route state of a gradio route.
type gradioGuard struct {
	timeout time.Duration // how long a queued call's usage record may stay open
	now     func() time.Time
	audio   *gradioAudio // measures output audio; nil when the route does not price it

	mu      sync.Mutex
	users   map[string]*gradioUser
	pending map[string]*gradioPending // open usage records of queued calls, by event id
	early   map[string]*gradioDone    // completions seen before their join's answer ended
}

func newGradioGuard(timeout time.Duration, now func() time.Time) *gradioGuard {
	return &gradioGuard{timeout: timeout, now: now, users: map[string]*gradioUser{},
		pending: map[string]*gradioPending{}, early: map[string]*gradioDone{}}
}

// gradioUser is what one caller may use on the app.
type gradioUser struct {
	scope    string // the session prefix
	sessions boundedSet
	events   boundedSet
	files    boundedSet
}

// boundedSet is a set that forgets its oldest entries past
// gradioMaxEntries.
type boundedSet struct {
	m     map[string]bool
	order []string
}

func (s *boundedSet) add(k string) {
	if s.m == nil {
		s.m = map[string]bool{}
	}
	if s.m[k] {
		return
	}
	s.m[k] = true
	s.order = append(s.order, k)
	if len(s.order) > gradioMaxEntries {
		delete(s.m, s.order[0])
		s.order = s.order[1:]
	}
}

func (s *boundedSet) has(k string) bool { return s.m[k] }

// gradioPending is the open usage record of one queued call.
type gradioPending struct {
	releases []func(context.Context, *tollgate.Outcome)
	ctx      context.Context
	out      tollgate.Outcome
	timer    *time.Timer
}

// gradioDone is how a call ended, as its stream told.
type gradioDone struct {
	result      string
	gpuMillis   int64
	audioMillis int64 // audio in the output files, when the route prices it
	end         time.Time
}

// user returns the caller's state, created on first use.
func (g *gradioGuard) user(p *tollgate.Principal) *gradioUser {
	key := p.TenantID + "/" + p.UserID
	g.mu.Lock()
	defer g.mu.Unlock()
	u := g.users[key]
	if u == nil {
		sum := sha256.Sum256([]byte(key))
		u = &gradioUser{scope: "tg" + hex.EncodeToString(sum[:8]) + "-"}
		g.users[key] = u
	}
	return u
}

// gradioExchange is what a gradio route learned of one request.
type gradioExchange struct {
	x       *exchange
	g       *gradioGuard
	u       *gradioUser
	kind    gradioKind
	metered bool
	event   string // the event id the app gave a metered queued call
}

type gradioKind int

const (
	gradioOther gradioKind = iota
	gradioJoin
	gradioCall // POST call/{api_name}: queued, answered with an event id
	gradioRun  // POST run/{api_name} or api/{api_name}: answered with the output
	gradioData
	gradioCallStream
	gradioUpload
)

var errGradioNotYours = tollgate.Errorf(tollgate.ENotFound, "no such session, event or file of yours on this app")

// inbound checks and rewrites a request on a gradio route before it is
// admitted: it prefixes session hashes, refuses foreign sessions, events
// and files, and says whether the request is a metered call.
func (g *gradioGuard) inbound(x *exchange, r *http.Request, rt *route) error {
	if x.call.Principal == nil {
		return tollgate.Errorf(tollgate.EUnauthorized, "a gradio route needs an authenticated caller")
	}
	u := g.user(x.call.Principal)
	gx := &gradioExchange{x: x, g: g, u: u}
	x.gradio = gx
	rel := "/" + strings.TrimPrefix(r.URL.Path, rt.path)
	api, isAPI := strings.CutPrefix(rel, gradioAPI)
	if !isAPI {
		api = rel
	}
	post := r.Method == http.MethodPost
	switch {
	case strings.HasPrefix(api, "/file="):
		if !g.has(u, &u.files, strings.TrimPrefix(api, "/file=")) {
			return errGradioNotYours
		}
	case strings.HasPrefix(api, "/stream/"):
		// Streamed media of an event: /stream/{event_id}/….
		event, _, _ := strings.Cut(strings.TrimPrefix(api, "/stream/"), "/")
		if !g.has(u, &u.events, event) {
			return errGradioNotYours
		}
	case strings.HasPrefix(api, "/proxy=") || strings.HasPrefix(api, "/mcp"):
		// Fetches for other Spaces, and tool calls that would bypass the
		// queue's metering.
		return tollgate.Errorf(tollgate.ENotFound, "not served through the gateway")
	case !isAPI:
		// The page and its assets.
	case post && api == "/queue/join":
		gx.kind, gx.metered = gradioJoin, true
		return g.rewriteBody(x, r, rt, func(body map[string]json.RawMessage) error {
			var hash string
			if json.Unmarshal(body["session_hash"], &hash) != nil || !gradioHash.MatchString(hash) {
				return tollgate.Errorf(tollgate.EInvalid, "session_hash: want 1 to 64 letters, digits, '_' or '-'")
			}
			if err := g.checkFiles(u, body["data"]); err != nil {
				return err
			}
			g.mu.Lock()
			u.sessions.add(hash)
			g.mu.Unlock()
			body["session_hash"], _ = json.Marshal(u.scope + hash)
			return nil
		})
	case r.Method == http.MethodGet && api == "/queue/data":
		q := r.URL.Query()
		hash := q.Get("session_hash")
		if !g.has(u, &u.sessions, hash) {
			return errGradioNotYours
		}
		q.Set("session_hash", u.scope+hash)
		r.URL.RawQuery = q.Encode()
		gx.kind = gradioData
	case strings.HasPrefix(api, "/heartbeat/"):
		hash := strings.TrimPrefix(api, "/heartbeat/")
		if !gradioHash.MatchString(hash) {
			return errGradioNotYours
		}
		g.mu.Lock()
		u.sessions.add(hash)
		g.mu.Unlock()
		r.URL.Path = strings.TrimSuffix(r.URL.Path, hash) + u.scope + hash
		r.URL.RawPath = ""
	case post && (api == "/cancel" || api == "/reset"):
		return g.rewriteBody(x, r, rt, func(body map[string]json.RawMessage) error {
			var hash, event string
			_ = json.Unmarshal(body["event_id"], &event)
			if !g.has(u, &u.events, event) {
				return errGradioNotYours
			}
			if raw, ok := body["session_hash"]; ok {
				if json.Unmarshal(raw, &hash) != nil || !g.has(u, &u.sessions, hash) {
					return errGradioNotYours
				}
				body["session_hash"], _ = json.Marshal(u.scope + hash)
			}
			return nil
		})
	case post && api == "/upload":
		gx.kind = gradioUpload
	case post && strings.HasPrefix(api, "/call/"):
		gx.kind, gx.metered = gradioCall, true
		return g.rewriteBody(x, r, rt, func(body map[string]json.RawMessage) error { return g.checkFiles(u, body["data"]) })
	case post && (strings.HasPrefix(api, "/run/") || strings.HasPrefix(api, "/api/")):
		gx.kind, gx.metered = gradioRun, true
		return g.rewriteBody(x, r, rt, func(body map[string]json.RawMessage) error { return g.checkFiles(u, body["data"]) })
	case strings.HasPrefix(api, "/call/"):
		// GET call/{api_name}/{event_id}: the event's stream.
		event := api[strings.LastIndexByte(api, '/')+1:]
		if !g.has(u, &u.events, event) {
			return errGradioNotYours
		}
		gx.kind, gx.event = gradioCallStream, event
	}
	return nil
}

func (g *gradioGuard) has(u *gradioUser, s *boundedSet, k string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return k != "" && s.has(k)
}

// rewriteBody reads a JSON object body, lets edit check and change it,
// and puts it back.
func (g *gradioGuard) rewriteBody(x *exchange, r *http.Request, rt *route, edit func(map[string]json.RawMessage) error) error {
	body, err := readBody(r, rt.maxBody)
	if err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return tollgate.Errorf(tollgate.EInvalid, "want a JSON object body")
	}
	if err := edit(m); err != nil {
		return err
	}
	if body, err = json.Marshal(m); err != nil {
		return tollgate.Errorf(tollgate.EInvalid, "want a JSON object body")
	}
	setBody(r, body)
	x.bytesIn = int64(len(body))
	x.call.BytesIn = x.bytesIn
	return nil
}

// checkFiles refuses data naming a file the caller neither uploaded nor
// received.
func (g *gradioGuard) checkFiles(u *gradioUser, data json.RawMessage) error {
	if len(data) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return tollgate.Errorf(tollgate.EInvalid, "data: want JSON")
	}
	var foreign bool
	walkFileData(v, func(p string) {
		if !g.has(u, &u.files, p) {
			foreign = true
		}
	})
	if foreign {
		return tollgate.Errorf(tollgate.EForbidden, "data names a file you did not upload or receive")
	}
	return nil
}

// walkFileData calls f with the path of every FileData in v.
func walkFileData(v any, f func(string)) {
	switch x := v.(type) {
	case map[string]any:
		if p, ok := x["path"].(string); ok { // a FileData, or anything shaped like one
			f(p)
			return
		}
		for _, e := range x {
			walkFileData(e, f)
		}
	case []any:
		for _, e := range x {
			walkFileData(e, f)
		}
	}
}

// response taps the app's answer: upload paths and FileData of streams
// become the caller's files, event ids of queued calls the caller's
// events, and process_completed settles the call's usage record.
func (gx *gradioExchange) response(res *http.Response) {
	if res.StatusCode != http.StatusOK || res.Body == nil || res.Body == http.NoBody {
		return
	}
	g, u := gx.g, gx.u
	switch gx.kind {
	case gradioUpload:
		res.Body = &jsonTap{ReadCloser: res.Body, done: func(b []byte) {
			var paths []string
			if json.Unmarshal(b, &paths) == nil {
				g.mu.Lock()
				for _, p := range paths {
					u.files.add(p)
				}
				g.mu.Unlock()
			}
		}}
	case gradioJoin, gradioCall:
		res.Body = &jsonTap{ReadCloser: res.Body, done: func(b []byte) {
			var v struct {
				EventID string `json:"event_id"`
			}
			if json.Unmarshal(b, &v) == nil && v.EventID != "" {
				g.mu.Lock()
				u.events.add(v.EventID)
				g.mu.Unlock()
				gx.event = v.EventID
			}
		}}
	case gradioRun:
		res.Body = &jsonTap{ReadCloser: res.Body, done: func(b []byte) {
			g.received(u, b)
			if g.audio != nil {
				var v struct {
					Data []any `json:"data"`
				}
				if json.Unmarshal(b, &v) == nil {
					gx.x.units.OutputAudioMillis = g.audio.millis(gx.x, v.Data)
				}
			}
		}}
	case gradioData, gradioCallStream:
		starts := map[string]time.Time{}
		res.Body = &sseTap{ReadCloser: res.Body, line: func(event, data string) {
			g.received(u, []byte(data))
			if gx.kind == gradioCallStream {
				switch event {
				case "complete":
					d := &gradioDone{result: tollgate.ResultOK, end: g.now()}
					if g.audio != nil {
						var out []any
						if json.Unmarshal([]byte(data), &out) == nil {
							d.audioMillis = g.audio.millis(gx.x, out)
						}
					}
					g.completed(gx.event, d)
				case "error":
					g.completed(gx.event, &gradioDone{result: tollgate.ResultUpstreamError, end: g.now()})
				}
				return
			}
			var m struct {
				Msg     string `json:"msg"`
				EventID string `json:"event_id"`
				Success bool   `json:"success"`
				Output  struct {
					Data     []any    `json:"data"`
					Duration *float64 `json:"duration"`
				} `json:"output"`
			}
			if json.Unmarshal([]byte(data), &m) != nil || m.EventID == "" {
				return
			}
			switch m.Msg {
			case "process_starts":
				starts[m.EventID] = g.now()
			case "process_completed":
				d := &gradioDone{result: tollgate.ResultOK, end: g.now()}
				switch {
				case !m.Success:
					d.result = tollgate.ResultUpstreamError
				case m.Output.Data == nil:
					d.result = tollgate.ResultCancelled
				}
				if d.result == tollgate.ResultOK && g.audio != nil {
					// Measured before the message reaches the client, so
					// the call is settled once the client sees it end.
					d.audioMillis = g.audio.millis(gx.x, m.Output.Data)
				}
				if m.Output.Duration != nil && *m.Output.Duration >= 0 {
					d.gpuMillis = int64(*m.Output.Duration*1000 + 0.5)
				} else if t, ok := starts[m.EventID]; ok {
					d.gpuMillis = d.end.Sub(t).Milliseconds()
				}
				g.completed(m.EventID, d)
			}
		}}
	}
}

// received makes every FileData in a message the caller's file.
func (g *gradioGuard) received(u *gradioUser, b []byte) {
	if !strings.Contains(string(b), `"path"`) {
		return
	}
	var v any
	if json.Unmarshal(b, &v) != nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	walkFileData(v, func(p string) { u.files.add(p) })
}

// hold keeps the releases of a metered queued call open until its stream
// tells how it ended (or the route's timeout passed); it reports false
// when there is nothing to wait for and the request's own outcome
// settles it.
func (gx *gradioExchange) hold(ctx context.Context, releases []func(context.Context, *tollgate.Outcome), out *tollgate.Outcome) bool {
	if gx.event == "" || (gx.kind != gradioJoin && gx.kind != gradioCall) || out.Result != tollgate.ResultOK {
		return false
	}
	g := gx.g
	pd := &gradioPending{releases: releases, ctx: ctx, out: *out}
	g.mu.Lock()
	if d := g.early[gx.event]; d != nil {
		delete(g.early, gx.event)
		g.mu.Unlock()
		pd.settle(d)
		return true
	}
	g.pending[gx.event] = pd
	event := gx.event
	pd.timer = time.AfterFunc(g.timeout, func() {
		g.completed(event, &gradioDone{result: tollgate.ResultUnknown, end: g.now()})
	})
	g.mu.Unlock()
	return true
}

// completed settles the call's open usage record, or remembers how it
// ended for the join whose answer has not ended yet.
func (g *gradioGuard) completed(event string, d *gradioDone) {
	g.mu.Lock()
	pd := g.pending[event]
	delete(g.pending, event)
	if pd == nil && d.result != tollgate.ResultUnknown {
		g.early[event] = d
		time.AfterFunc(g.timeout, func() {
			g.mu.Lock()
			delete(g.early, event)
			g.mu.Unlock()
		})
	}
	g.mu.Unlock()
	if pd != nil {
		pd.timer.Stop()
		pd.settle(d)
	}
}

func (pd *gradioPending) settle(d *gradioDone) {
	out := pd.out
	out.Result, out.End = d.result, d.end
	out.Units.GPUMillis, out.Units.OutputAudioMillis = d.gpuMillis, d.audioMillis
	for _, rel := range pd.releases {
		rel(pd.ctx, &out)
	}
}

// gradioForwardedPrefix is the X-Forwarded-Prefix of a route: its path.
func gradioForwardedPrefix(rt *route) string { return strings.TrimSuffix(rt.path, "/") }

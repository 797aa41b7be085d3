package gradiotest

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// apiPrefix is Gradio's API_PREFIX.
const apiPrefix = "/gradio_api"

// Options configure the emulated app. The zero value is a plain app.
type Options struct {
	// Concurrency is how many events of one function run at a time
	// (Gradio's default_concurrency_limit). Defaults to 1.
	Concurrency int
	// RootPath is the app's root_path (launch(root_path=…) or
	// GRADIO_ROOT_PATH): a path such as "/apps/tts" or a full URL. Defaults
	// to none.
	RootPath string
	// MountPath serves the app under this path prefix, as
	// gr.mount_gradio_app(app, blocks, path=…) does; the mount path is the
	// ASGI root_path that /config reports when RootPath is empty. Defaults
	// to serving at "/".
	MountPath string
	// Hold makes every call wait, once started and after its first log and
	// progress messages, until the test finishes or fails it through
	// NextStarted. Defaults to false: calls run to the end at once.
	Hold bool
	// RunTime is how long each call takes when Hold is false. Defaults to
	// no time at all.
	RunTime time.Duration
	// ShowError is launch(show_error=True): errors that are not gr.Error
	// carry their message to the client. Defaults to false.
	ShowError bool
	// ConnectHeartbeat marks the app as having session state, so the
	// client opens /gradio_api/heartbeat/{session_hash}. Defaults to false.
	ConnectHeartbeat bool
	// HeartbeatInterval is how often event streams get a heartbeat
	// message (GRADIO_HEARTBEAT_INTERVAL). Defaults to 15 seconds.
	HeartbeatInterval time.Duration
	// SampleRate of the generated audio in Hz. Defaults to 24000.
	SampleRate int
	// SecondsPerChar is how many seconds of audio one character of text
	// yields at speed 1. Defaults to 0.1.
	SecondsPerChar float64
	// App is the app's shape. Defaults to AppDemo.
	App App
}

// Server is a running emulated Gradio app.
type Server struct {
	// URL is the app's base URL (with the mount path, no trailing slash),
	// what a user passes to Client.connect.
	URL string
	// Dir is the app's temp dir (GRADIO_TEMP_DIR): uploads and outputs.
	Dir string

	opts    Options
	fns     []endpoint
	page    *template.Template
	hs      *httptest.Server
	appID   int64
	seed    []byte
	started chan *Running
	stop    chan struct{}
	changed chan struct{} // closed and renewed when a queue changes

	calls sync.WaitGroup // running calls, waited for by Close

	mu       sync.Mutex
	requests []Request
	sessions map[string]*session
	events   map[string]*event // queued and running, by event id
	groups   []*group          // one per function, by fn_index
	execs    []*Execution
	uploads  []Upload
	closed   bool
}

// New starts the emulated app on 127.0.0.1; tb.Cleanup closes it.
func New(tb testing.TB, opts Options) *Server {
	tb.Helper()
	opts.Concurrency = cmp.Or(opts.Concurrency, 1)
	opts.HeartbeatInterval = cmp.Or(opts.HeartbeatInterval, 15*time.Second)
	opts.SampleRate = cmp.Or(opts.SampleRate, 24000)
	opts.SecondsPerChar = cmp.Or(opts.SecondsPerChar, 0.1)
	opts.MountPath = strings.TrimRight(opts.MountPath, "/")
	if opts.MountPath != "" && !strings.HasPrefix(opts.MountPath, "/") {
		tb.Fatalf("gradiotest: MountPath %q must start with /", opts.MountPath)
	}
	dir, err := filepath.EvalSymlinks(tb.TempDir())
	if err != nil {
		tb.Fatalf("gradiotest: temp dir: %v", err)
	}
	seed := make([]byte, 16)
	rand.Read(seed)
	s := &Server{
		Dir:      dir,
		opts:     opts,
		appID:    int64(seed[0])<<40 | int64(seed[1])<<32 | int64(seed[2])<<24 | int64(seed[3])<<16,
		seed:     seed,
		started:  make(chan *Running, 1024),
		stop:     make(chan struct{}),
		changed:  make(chan struct{}),
		sessions: map[string]*session{},
		events:   map[string]*event{},
		fns:      appEndpoints(),
		page:     parsePage(),
	}
	if opts.App == AppCosyVoiceWebUI {
		s.fns = webuiEndpoints()
	}
	for range s.fns {
		s.groups = append(s.groups, &group{limit: opts.Concurrency, avg: &processTime{}})
	}
	s.hs = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.hs.URL + opts.MountPath
	tb.Cleanup(s.Close)
	return s
}

// Close stops the app: open event streams end, held calls are cancelled.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.stop)
	for _, ev := range s.events {
		if ev.cancel != nil {
			ev.cancel()
		}
	}
	s.mu.Unlock()
	s.hs.Close()
	s.calls.Wait()
}

// Request is one request the app received, as it arrived.
type Request struct {
	Method string
	Path   string // the URL path, decoded, with the mount path
	Query  string
	Header http.Header
}

// Requests returns every request the app received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.requests)
	for i := range out {
		out[i].Header = out[i].Header.Clone()
	}
	return out
}

// serve routes a request as Gradio's FastAPI app does.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone()})
	s.mu.Unlock()
	p, ok := strings.CutPrefix(r.URL.Path, s.opts.MountPath)
	if !ok || (p != "" && !strings.HasPrefix(p, "/")) {
		writeDetail(w, http.StatusNotFound, "Not Found")
		return
	}
	p = cmp.Or(p, "/")
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	post := r.Method == http.MethodPost
	api, isAPI := strings.CutPrefix(p, apiPrefix)
	switch {
	case get && p == "/":
		s.handleIndex(w, r)
	case get && (p == "/config" || p == "/config/"):
		s.handleConfig(w, r)
	case !isAPI:
		writeDetail(w, http.StatusNotFound, "Not Found")
	case get && (api == "/info" || api == "/info/"):
		s.handleInfo(w, r)
	case get && (api == "/app_id" || api == "/app_id/"):
		writeJSON(w, http.StatusOK, map[string]any{"app_id": s.appID})
	case get && strings.HasPrefix(api, "/file="):
		s.handleFile(w, r, strings.TrimPrefix(api, "/file="))
	case get && strings.HasPrefix(api, "/file/"):
		s.handleFile(w, r, strings.TrimPrefix(api, "/file/"))
	case post && api == "/upload":
		s.handleUpload(w, r)
	case post && api == "/queue/join":
		s.handleJoin(w, r)
	case get && api == "/queue/data":
		s.handleQueueData(w, r)
	case post && api == "/cancel":
		s.handleCancel(w, r)
	case post && (api == "/reset" || api == "/reset/"):
		s.handleReset(w, r)
	case get && strings.HasPrefix(api, "/heartbeat/"):
		s.handleHeartbeat(w, r)
	case post && strings.HasPrefix(api, "/call/"):
		s.handleCallPost(w, r, strings.Trim(strings.TrimPrefix(api, "/call/"), "/"))
	case get && strings.HasPrefix(api, "/call/"):
		s.handleCallGet(w, r, strings.TrimPrefix(api, "/call/"))
	case post && (strings.HasPrefix(api, "/run/") || strings.HasPrefix(api, "/api/")):
		// Every function is queued and api_open is false, so Gradio
		// refuses direct calls.
		writeDetail(w, http.StatusNotFound, "This API endpoint does not accept direct HTTP POST requests. Please join the queue to use this API.")
	default:
		writeDetail(w, http.StatusNotFound, "Not Found")
	}
}

// rootURL is route_utils.get_root_url: the app's public URL without a
// trailing slash, for a request to routePath.
func rootURL(r *http.Request, routePath, rootPath string) string {
	if isHTTPURL(rootPath) {
		return strings.TrimRight(rootPath, "/")
	}
	fwdHost := firstHeader(r, "X-Forwarded-Host")
	var root string
	switch {
	case fwdHost != "":
		root = "http://" + fwdHost
	case firstHeader(r, "X-Gradio-Server") != "":
		root = firstHeader(r, "X-Gradio-Server")
	default:
		root = "http://" + r.Host + r.URL.EscapedPath()
	}
	if u, err := url.Parse(root); err == nil {
		u.RawQuery = ""
		root = u.String()
	}
	root = strings.TrimRight(root, "/")
	if firstHeader(r, "X-Forwarded-Proto") == "https" {
		root = strings.Replace(root, "http://", "https://", 1)
	}
	routePath = strings.TrimRight(routePath, "/")
	if routePath != "" && fwdHost == "" && strings.HasSuffix(root, routePath) {
		root = strings.TrimSuffix(root, routePath)
	}
	root = strings.TrimRight(root, "/")
	if rootPath != "" {
		if u, err := url.Parse(root); err == nil && cmp.Or(u.Path, "/") != rootPath {
			u.Path, u.RawPath = rootPath, ""
			root = u.String()
		}
	}
	return strings.TrimRight(root, "/")
}

// apiCallPath is route_utils.get_api_call_path.
func apiCallPath(r *http.Request) string {
	p := strings.TrimRight(r.URL.Path, "/")
	if strings.HasSuffix(p, apiPrefix+"/queue/join") {
		return apiPrefix + "/queue/join"
	}
	if i := strings.LastIndex(p, apiPrefix+"/call"); i >= 0 {
		return p[i:]
	}
	return ""
}

func firstHeader(r *http.Request, name string) string {
	v, _, _ := strings.Cut(r.Header.Get(name), ",")
	return strings.TrimSpace(v)
}

func isHTTPURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeDetail answers as FastAPI renders an HTTPException.
func writeDetail(w http.ResponseWriter, status int, detail any) {
	writeJSON(w, status, map[string]any{"detail": detail})
}

// writeValidation answers as FastAPI renders a request validation error.
func writeValidation(w http.ResponseWriter, loc []any, msg string) {
	writeDetail(w, http.StatusUnprocessableEntity, []any{map[string]any{
		"type": "value_error", "loc": loc, "msg": msg, "input": nil,
	}})
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

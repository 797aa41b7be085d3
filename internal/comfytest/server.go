package comfytest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Options configures an emulator. The zero value is a single-user
// ComfyUI running one prompt at a time with an unbounded queue.
type Options struct {
	// Concurrency is how many prompts execute at once. Defaults to 1, as
	// ComfyUI has one prompt worker.
	Concurrency int
	// MaxQueue, when positive, refuses a POST /prompt (503) while that
	// many prompts are pending. Defaults to 0: unbounded, as ComfyUI.
	MaxQueue int
	// Hold makes every prompt, once its first progress message is sent,
	// wait until Release or Fail is called for it or it is interrupted.
	// Defaults to false.
	Hold bool
	// Duration, when set, is how long each prompt's work takes (waited at
	// the same point as Hold). Defaults to no wait.
	Duration func(p Prompt) time.Duration
	// MultiUser is ComfyUI's --multi-user: Comfy-User picks the user
	// whose settings and user data a request sees. Defaults to false.
	MultiUser bool
	// Users are the users known at start under MultiUser (id → name).
	// Defaults to none, as a fresh users.json.
	Users map[string]string
	// NoCache is --cache-none: every node runs every time. Defaults to
	// false: a node whose inputs did not change is cached.
	NoCache bool
	// Nodes adds (or replaces, by name) node classes. Defaults to none:
	// the built-in LoadImage, SaveImage, PreviewImage, DDColor_Colorize,
	// LoadAudio, SONIC_PreData, SONIC_Inference and VHS_VideoCombine.
	Nodes []NodeClass
	// Dir holds input/, output/, temp/ and user/. Defaults to tb.TempDir()
	// or a new temporary directory removed by Close.
	Dir string
}

// Prompt is a queued or running prompt as the emulator saw it.
type Prompt struct {
	Number   float64
	ID       string
	ClientID string
	Graph    map[string]any // the prompt as posted
	Extra    map[string]any // extra_data, with client_id and create_time
	Outputs  []string       // outputs_to_execute
	nodes    map[string]node
	answered bool // the POST /prompt response is written
}

// Execution is one prompt's run, in the order runs started.
type Execution struct {
	PromptID string
	ClientID string
	Number   float64
	// Start and End are the timestamps (in milliseconds, as the messages
	// carry them) of execution_start and of execution_success,
	// execution_error or execution_interrupted: the prompt's GPU time.
	Start  time.Time
	End    time.Time // zero while running
	Status string    // "running", "success", "error" or "interrupted"
}

// Request is one HTTP request the emulator received.
type Request struct {
	Method, Path, Query string
	ComfyUser           string // the Comfy-User header, if any
}

// Server is a running emulator.
type Server struct {
	// URL is the base URL, http://127.0.0.1:PORT, without a trailing slash.
	URL string

	opts    Options
	classes map[string]NodeClass
	root    string
	ownRoot bool
	http    *httptest.Server
	hub     *hub
	ctx     context.Context
	cancel  context.CancelFunc
	workers sync.WaitGroup

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on every state change
	number     float64
	queue      promptHeap
	running    map[string]*run
	history    []string
	historyMap map[string]map[string]any
	executions []Execution
	released   map[string]error // Release/Fail called, maybe before the hold
	cache      map[string]cached
	flags      map[string]any
	users      map[string]string
	requests   []Request
}

// New starts an emulator on 127.0.0.1. When tb is not nil it closes
// itself with tb.Cleanup, keeps its files in tb.TempDir() and fails tb
// if it cannot start; with a nil tb it panics instead and the caller
// must Close it.
func New(tb testing.TB, opts Options) *Server {
	if tb != nil {
		tb.Helper()
	}
	s, err := start(tb, opts)
	if err != nil {
		if tb == nil {
			panic(err)
		}
		tb.Fatalf("comfytest: %v", err)
	}
	if tb != nil {
		tb.Cleanup(s.Close)
	}
	return s
}

func start(tb testing.TB, opts Options) (*Server, error) {
	opts.Concurrency = max(opts.Concurrency, 1)
	s := &Server{opts: opts, classes: map[string]NodeClass{}, changed: make(chan struct{}),
		running: map[string]*run{}, historyMap: map[string]map[string]any{},
		released: map[string]error{}, cache: map[string]cached{}, flags: map[string]any{},
		users: map[string]string{"default": "default"}}
	if opts.MultiUser {
		s.users = map[string]string{}
		for k, v := range opts.Users {
			s.users[k] = v
		}
	}
	for _, c := range append(defaultNodes(), opts.Nodes...) {
		s.classes[c.Name] = c
	}
	switch {
	case opts.Dir != "":
		s.root = opts.Dir
	case tb != nil:
		s.root = tb.TempDir()
	default:
		dir, err := os.MkdirTemp("", "comfytest-")
		if err != nil {
			return nil, fmt.Errorf("make directory: %w", err)
		}
		s.root, s.ownRoot = dir, true
	}
	for _, d := range []string{"input", "output", "temp", "user"} {
		if err := os.MkdirAll(filepath.Join(s.root, d), 0o755); err != nil {
			return nil, fmt.Errorf("make %s directory: %w", d, err)
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.hub = newHub(s.ctx)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s.http = &httptest.Server{Listener: ln, Config: &http.Server{Handler: s.routes()}}
	s.http.Start()
	s.URL = s.http.URL
	for range opts.Concurrency {
		s.workers.Add(1)
		go s.worker()
	}
	return s, nil
}

// Close stops the workers (interrupting running prompts), closes every
// websocket and the HTTP server.
func (s *Server) Close() {
	s.cancel()
	s.http.CloseClientConnections()
	s.hub.closeAll()
	s.http.Close()
	s.workers.Wait()
	s.hub.wait()
	if s.ownRoot {
		_ = os.RemoveAll(s.root)
	}
}

// Dir is the directory of a type: "input", "output", "temp" or "user".
func (s *Server) Dir(kind string) string { return s.dir(kind) }

func (s *Server) dir(kind string) string { return filepath.Join(s.root, kind) }

// notify wakes waiters; s.mu must be held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitUntil waits until cond (called with s.mu held) is true.
func (s *Server) waitUntil(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("comfytest wait: %w", ctx.Err())
		case <-ch:
		}
	}
}

// Executions is the execution log: every prompt started, in order.
func (s *Server) Executions() []Execution {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Execution(nil), s.executions...)
}

// Order is the prompt IDs in the order they started executing.
func (s *Server) Order() []string {
	var ids []string
	for _, e := range s.Executions() {
		ids = append(ids, e.PromptID)
	}
	return ids
}

// Requests is every HTTP request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Pending is the prompts waiting in the queue, in the order they will run.
func (s *Server) Pending() []Prompt {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Prompt
	for _, p := range s.queue.sorted() {
		out = append(out, *p)
	}
	return out
}

// WaitStarted waits until the prompt has started executing.
func (s *Server) WaitStarted(ctx context.Context, promptID string) error {
	return s.waitUntil(ctx, func() bool { return s.execIndex(promptID) >= 0 })
}

// WaitHeld waits until the prompt is running and waiting at its hold
// point (Options.Hold or Duration): its first progress message is sent.
func (s *Server) WaitHeld(ctx context.Context, promptID string) error {
	return s.waitUntil(ctx, func() bool { r := s.running[promptID]; return r != nil && r.held })
}

// WaitDone waits until the prompt has finished and is in the history,
// and returns its execution.
func (s *Server) WaitDone(ctx context.Context, promptID string) (Execution, error) {
	var e Execution
	err := s.waitUntil(ctx, func() bool {
		i := s.execIndex(promptID)
		if i < 0 || s.executions[i].End.IsZero() || s.historyMap[promptID] == nil {
			return false
		}
		e = s.executions[i]
		return true
	})
	return e, err
}

// WaitIdle waits until nothing is pending or running.
func (s *Server) WaitIdle(ctx context.Context) error {
	return s.waitUntil(ctx, func() bool { return s.queue.Len() == 0 && len(s.running) == 0 })
}

// Broadcast sends {"type": event, "data": data} to every socket, as a
// custom node's PromptServer.instance.send_sync(event, data) without a
// sid does.
func (s *Server) Broadcast(event string, data any) { s.hub.send(event, data, "") }

// Release lets a held prompt finish successfully. Called before the
// prompt reaches its hold point, the prompt will not wait.
func (s *Server) Release(promptID string) { s.release(promptID, nil) }

// Fail makes a held prompt end with an execution_error whose
// exception_message is message.
func (s *Server) Fail(promptID, message string) { s.release(promptID, &nodeError{message}) }

type nodeError struct{ msg string }

func (e *nodeError) Error() string { return e.msg }

func (s *Server) release(promptID string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.released[promptID] = err
	if r := s.running[promptID]; r != nil && r.release != nil {
		select {
		case r.release <- err:
		default:
		}
	}
	s.notify()
}

func (s *Server) execIndex(promptID string) int {
	for i := len(s.executions) - 1; i >= 0; i-- {
		if s.executions[i].PromptID == promptID {
			return i
		}
	}
	return -1
}

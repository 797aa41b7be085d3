package gradiotest

import (
	"net/http"
	"slices"
	"sort"
	"testing"
	"time"
)

// Outcome is how a call ended.
type Outcome string

// Outcomes of a call in the execution log.
const (
	InProgress Outcome = ""          // still running
	Completed  Outcome = "completed" // process_completed with success
	Failed     Outcome = "failed"    // process_completed with success false
	Cancelled  Outcome = "cancelled" // cancelled through /gradio_api/cancel
)

// Execution is one call the queue started: the execution log's entry.
type Execution struct {
	EventID     string
	SessionHash string
	FnIndex     int
	APIName     string
	Data        []any       // the data of queue/join or call
	Header      http.Header // the headers of the request that queued it
	Enqueued    time.Time
	Started     time.Time
	Ended       time.Time // zero while running
	Outcome     Outcome
	Error       string  // the failure's message, shown or not
	Audio       string  // path of the WAV produced
	AudioSecs   float64 // seconds of audio produced
}

// Upload is one file stored by /gradio_api/upload.
type Upload struct {
	Path   string
	Size   int64
	Header http.Header
}

// Running is a call that has started, handed to the test when
// Options.Hold is set. Finish or Fail ends it; Progress and Log send
// messages to its session while it runs.
type Running struct {
	EventID     string
	SessionHash string
	FnIndex     int
	APIName     string
	Data        []any

	s       *Server
	ev      *event
	release chan error
}

// Finish lets the held call complete normally.
func (r *Running) Finish() { r.end(nil) }

// Fail makes the held call raise gr.Error(message).
func (r *Running) Fail(message string) { r.end(appError{message}) }

func (r *Running) end(err error) {
	select {
	case r.release <- err:
	default:
	}
}

// Progress sends a progress message as gr.Progress tracking index of
// length steps does.
func (r *Running) Progress(index, length int, desc string) {
	r.s.sendProgress(r.ev, index, length, desc)
}

// Log sends a log message as gr.Info (level "info") or gr.Warning does.
func (r *Running) Log(level, message string) {
	r.s.sendLog(r.ev, level, message)
}

// Started delivers each call as it starts when Options.Hold is set.
func (s *Server) Started() <-chan *Running { return s.started }

// NextStarted waits for the next call to start (Options.Hold must be set)
// and returns it; it fails tb when none starts within a minute.
func (s *Server) NextStarted(tb testing.TB) *Running {
	tb.Helper()
	if !s.opts.Hold {
		tb.Fatal("gradiotest: NextStarted needs Options.Hold")
	}
	select {
	case r := <-s.started:
		return r
	case <-time.After(time.Minute):
		tb.Fatal("gradiotest: no call started within a minute")
		return nil
	}
}

// WaitQueued waits until n calls wait in the queues (started ones not
// counted); it fails tb when that does not happen within a minute.
func (s *Server) WaitQueued(tb testing.TB, n int) {
	tb.Helper()
	timeout := time.After(time.Minute)
	for {
		s.mu.Lock()
		queued := 0
		for _, g := range s.groups {
			queued += len(g.queue)
		}
		changed := s.changed
		s.mu.Unlock()
		if queued == n {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			tb.Fatalf("gradiotest: %d calls queued after a minute, want %d", queued, n)
		}
	}
}

// changedLocked tells WaitQueued the queues changed.
func (s *Server) changedLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Executions returns the execution log: every call started so far, in
// the order they started.
func (s *Server) Executions() []Execution {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Execution, len(s.execs))
	for i, e := range s.execs {
		out[i] = *e
		out[i].Data = slices.Clone(e.Data)
		out[i].Header = e.Header.Clone()
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}

// Uploads returns the files uploaded so far.
func (s *Server) Uploads() []Upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.uploads)
	for i := range out {
		out[i].Header = out[i].Header.Clone()
	}
	return out
}

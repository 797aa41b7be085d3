package edge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/internal/h1"
)

// Options configure a Server.
type Options struct {
	// Handler serves every request. Required.
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request head: a new
	// connection's first head, from its first byte to its blank line, is
	// due this long after the accept (so a connection that sends nothing
	// is closed then); a later head is due this long after its first
	// byte. Defaults to 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the first byte of the next request
	// on a keep-alive connection. Defaults to 120s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request head (net/http answers 431 past
	// it). Defaults to 65536.
	MaxHeaderBytes int
	// WatchAfter is how long a request runs before its connection is
	// watched for the client going away (a stream is watched at its first
	// flush). Defaults to 10ms.
	WatchAfter time.Duration
	// ErrorLog receives panics and connection errors. Defaults to the log
	// package's standard logger.
	ErrorLog *log.Logger
}

// Server serves HTTP/1.1; see the package documentation.
type Server struct {
	opts     Options
	fallback *http.Server
	base     context.Context // every request's context descends from it
	handoff  *handoffListener
	fields   *h1.Parser
	date     atomic.Pointer[dateLine]

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	shutdown  atomic.Bool
	fbOnce    sync.Once
}

// New returns a server for opts.
func New(opts Options) *Server {
	opts.ReadHeaderTimeout = cmp.Or(opts.ReadHeaderTimeout, 10*time.Second)
	opts.IdleTimeout = cmp.Or(opts.IdleTimeout, 120*time.Second)
	opts.MaxHeaderBytes = cmp.Or(opts.MaxHeaderBytes, 1<<16)
	opts.WatchAfter = cmp.Or(opts.WatchAfter, 10*time.Millisecond)
	if opts.ErrorLog == nil {
		opts.ErrorLog = log.Default()
	}
	s := &Server{
		opts:      opts,
		fields:    h1.NewParser(),
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
	}
	s.handoff = newHandoffListener()
	// http.ServerContextKey tells handlers they run under a server that
	// recovers panics: httputil.ReverseProxy then aborts a response whose
	// upstream body failed (http.ErrAbortHandler) instead of ending it as
	// if complete.
	s.fallback = &http.Server{
		Handler:           opts.Handler,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		ErrorLog:          opts.ErrorLog,
	}
	s.base = context.WithValue(context.Background(), http.ServerContextKey, s.fallback)
	return s
}

// Serve accepts connections on ln until Shutdown or Close, and returns
// http.ErrServerClosed then; any other accept error is returned as is.
func (s *Server) Serve(ln net.Listener) error {
	if s.shutdown.Load() {
		return http.ErrServerClosed
	}
	s.fbOnce.Do(func() {
		s.handoff.addr = ln.Addr()
		go func() { _ = s.fallback.Serve(s.handoff) }()
	})
	s.mu.Lock()
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return http.ErrServerClosed
			}
			// As net/http: a temporary error (too many open files, a
			// connection reset before accept) is retried with back-off.
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.opts.ErrorLog.Printf("http: accept error: %v; retrying in %v", err, backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		backoff = 0
		c := s.newConn(nc)
		if !s.track(c) {
			_ = nc.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Shutdown stops accepting, closes idle connections and waits until every
// active request has finished (each answered with "Connection: close"),
// or ctx ends, whose error it then returns.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginShutdown()
	fb := make(chan error, 1)
	go func() { fb <- s.fallback.Shutdown(ctx) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() == 0 {
			return <-fb
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.beginShutdown()
	err := s.fallback.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.nc.Close()
	}
	return err
}

func (s *Server) beginShutdown() {
	s.shutdown.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.listeners {
		_ = ln.Close()
	}
	_ = s.handoff.Close()
}

// closeIdle closes the connections waiting for a request and returns how
// many connections are left.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			_ = c.nc.Close()
		}
	}
	return len(s.conns)
}

// dateLine is the Date header of one second, as sent.
type dateLine struct {
	sec  int64
	line []byte
}

// dateHeader returns "Date: ...\r\n" for now, formatted once a second.
func (s *Server) dateHeader(now time.Time) []byte {
	sec := now.Unix()
	if d := s.date.Load(); d != nil && d.sec == sec {
		return d.line
	}
	b := make([]byte, 0, 40)
	b = append(b, "Date: "...)
	b = now.UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, "\r\n"...)
	s.date.Store(&dateLine{sec: sec, line: b})
	return b
}

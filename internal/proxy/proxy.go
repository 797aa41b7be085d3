package proxy

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
	"github.com/tollgate/tollgate/internal/upstream"
)

// Options are the collaborators of a Proxy.
type Options struct {
	// Auth verifies the credentials of requests on non-public routes.
	// Required when any route is not public.
	Auth tollgate.Authenticator
	// Admissions are called in order before forwarding; see the package
	// documentation for the contract.
	Admissions []tollgate.Admission
	// Logger receives access lines (when server.access_log is on) and
	// internal errors. Defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Metrics registers the data plane's collectors. Nil keeps them
	// unregistered.
	Metrics prometheus.Registerer
	// InternalToken mints the short-lived token sent upstream on routes with
	// internal_token: true; the audience is the route name. Optional.
	InternalToken func(ctx context.Context, p *tollgate.Principal, audience string) (string, error)
	// ClientIP returns the caller's address. Defaults to the host of
	// RemoteAddr.
	ClientIP func(*http.Request) string
	// FailureThreshold consecutive failures (connect errors, 5xx) take an
	// upstream out of its pool for Cooldown. Defaults to 3.
	FailureThreshold int
	// Cooldown an upstream is skipped after FailureThreshold failures.
	// Defaults to 10s.
	Cooldown time.Duration
	// SessionPage, when set, sees every upstream answer to a caller the
	// session cookie authenticated (Principal.ViaSession) before it is
	// copied, and may rewrite it: web.SessionPage gives an HTML page the
	// session's CSRF token and the script that sends it, so native UIs
	// (ComfyUI, Gradio) work with the cookie. Optional.
	SessionPage func(p *tollgate.Principal, res *http.Response)
	// Transport carries requests to upstreams. Defaults to tollgate's own
	// transport (internal/upstream), tuned for many keep-alive connections
	// per upstream.
	Transport http.RoundTripper
	// Native answers the gateway's own endpoints of routes, by route
	// name; every comfyui route needs one.
	Native map[string]Native
	// UpstreamTLS configures the own transport's connections to HTTPS
	// upstreams (trusted roots, client certificates). Defaults to the
	// system's roots.
	UpstreamTLS *tls.Config
}

// Proxy is the data plane: an http.Handler serving every configured route.
type Proxy struct {
	opts      Options
	log       *slog.Logger
	accessLog bool
	now       func() time.Time
	clientIP  func(*http.Request) string
	trusted   []netip.Prefix
	hdr       *identityHeaders
	ids       *idSource
	metrics   *metrics
	transport http.RoundTripper
	own       *upstream.Transport // the built-in transport, when it is the one in use: the direct exchange rides on it
	buffers   *bufferPool
	routes    *table
	unmatched *routeMetrics // requests that matched no route
	draining  atomic.Bool

	mu   sync.Mutex // guards stop
	stop func()
}

// New compiles the routes of cfg (rules, schemas, pools) and returns the
// handler. A bad rule, schema or upstream is an error naming the route.
func New(cfg *config.Config, opts Options) (*Proxy, error) {
	opts.FailureThreshold = cmp.Or(opts.FailureThreshold, 3)
	opts.Cooldown = cmp.Or(opts.Cooldown, 10*time.Second)
	p := &Proxy{
		opts:      opts,
		log:       cmp.Or(opts.Logger, slog.Default()),
		accessLog: cfg.Server.AccessLog == nil || *cfg.Server.AccessLog,
		now:       opts.Now,
		clientIP:  opts.ClientIP,
		hdr:       newIdentityHeaders(cfg.Headers),
		ids:       newIDSource(),
		buffers:   newBufferPool(),
		transport: opts.Transport,
	}
	if opts.Now == nil {
		p.now = time.Now
	}
	if opts.ClientIP == nil {
		p.clientIP = remoteHost
	}
	if p.transport == nil {
		p.own = upstream.New(upstream.Config{TLS: opts.UpstreamTLS})
		p.transport = p.own
	}
	for i, s := range cfg.Server.TrustedProxies {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("server.trusted_proxies[%d]: %w", i, err)
		}
		p.trusted = append(p.trusted, pfx.Masked())
	}
	var err error
	if p.metrics, err = newMetrics(opts.Metrics); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	p.unmatched = p.metrics.forRoute(unmatchedRoute)
	if p.routes, err = p.compileRoutes(cfg.Routes); err != nil {
		return nil, err
	}
	for _, rt := range p.routes.all {
		if !rt.public && opts.Auth == nil {
			return nil, fmt.Errorf("route %q is not public and Options.Auth is nil", rt.name)
		}
	}
	return p, nil
}

// Drain makes new requests get 503 while in-flight requests and streams
// finish; http.Server.Shutdown does the waiting.
func (p *Proxy) Drain() { p.draining.Store(true) }

// Draining reports whether Drain was called, for readiness checks.
func (p *Proxy) Draining() bool { return p.draining.Load() }

// remoteHost is the default client IP: the host of RemoteAddr.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// fromTrustedProxy reports whether the peer is one of server.trusted_proxies.
func (p *Proxy) fromTrustedProxy(r *http.Request) bool {
	if len(p.trusted) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, pfx := range p.trusted {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// writeMethodNotAllowed answers 405 in the OpenAI error shape.
func writeMethodNotAllowed(w http.ResponseWriter, allow []string) {
	var b httpx.ErrorBody
	b.Error.Message = "method not allowed on this route"
	b.Error.Type = "invalid_request_error"
	b.Error.Code = "method_not_allowed"
	w.Header().Set("Allow", strings.Join(allow, ", "))
	httpx.WriteJSON(w, http.StatusMethodNotAllowed, b)
}

// refuse renders err for a request refused before forwarding.
func (p *Proxy) refuse(x *exchange, r *http.Request, err error) {
	x.result = tollgate.ResultRejected
	var mnf errModelNotFound
	if errors.As(err, &mnf) {
		writeModelNotFound(x, mnf.model)
		return
	}
	httpx.WriteError(x, r, p.log, err)
}

var errDraining = &tollgate.Error{Code: tollgate.EUnavailable, Message: "the gateway is shutting down; retry on another instance"}

// interface guard
var _ http.Handler = (*Proxy)(nil)

// bufferPool recycles ReverseProxy's copy buffers. It pools array
// pointers, so Put converts the slice back without allocating.
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.p.Get().(*[copyBufferSize]byte)[:] }

func (b *bufferPool) Put(s []byte) {
	if cap(s) >= copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(s[:copyBufferSize]))
	}
}

var _ httputil.BufferPool = (*bufferPool)(nil)

// isCancel reports whether err is a cancellation or deadline.

package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tollgate/tollgate/internal/admin"
	"github.com/tollgate/tollgate/internal/auth"
	"github.com/tollgate/tollgate/internal/comfyroute"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/edge"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/jobs"
	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/meter"
	"github.com/tollgate/tollgate/internal/tollgate"
	"github.com/tollgate/tollgate/internal/web"
	"github.com/tollgate/tollgate/internal/webhook"
)

func runServe(ctx context.Context, args []string, env Env) error {
	fs, cfgPath := newFlags("serve", env)
	demoMode := fs.Bool("demo", false, "also serve the built-in demo backends and routes")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this loopback address, e.g. 127.0.0.1:6060")
	if err := noPositional(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	tuneGC(env)
	log := slog.New(slog.NewJSONHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	g, err := newGateway(ctx, cfg, gatewayOptions{Demo: *demoMode, Env: env, Logger: log})
	if err != nil {
		return err
	}
	defer g.Close()
	if *pprofAddr != "" {
		stop, err := servePprof(*pprofAddr)
		if err != nil {
			return err
		}
		defer stop()
	}
	return g.Serve(ctx)
}

// gatewayOptions are what serve adds to the config.
type gatewayOptions struct {
	Demo   bool
	Env    Env
	Logger *slog.Logger
	// Listener, when set, is served instead of listening on cfg.Listen.
	Listener net.Listener
	// MeterClock is the usage ledger's clock (record times, leases).
	// Defaults to time.Now.
	MeterClock func() time.Time
	// Heartbeat is how often the meter renews its lease in cluster mode.
	// Defaults to a third of metering.lease_ttl.
	Heartbeat time.Duration
	// HTTPListener, when set, is served instead of listening on
	// cfg.ListenHTTP.
	HTTPListener net.Listener
}

// gateway is one running tollgate: store, identity, protection, metering,
// data plane and the HTTP server around them.
type gateway struct {
	cfg      *config.Config
	opts     gatewayOptions
	log      *slog.Logger
	store    *engines
	identity *identity
	prot     *protection
	meter    *meter.Meter
	jobs     *jobs.Service // nil without job models
	comfy    []*comfyroute.Route
	handler  http.Handler
	registry *prometheus.Registry
	closers  []func()
	drain    func()
	// webhooks delivers the webhooks of predictions (Send).
	webhooks *webhook.Service
}

// newGateway wires every part from cfg. On error everything opened so far
// is closed.
func newGateway(ctx context.Context, cfg *config.Config, opts gatewayOptions) (_ *gateway, err error) {
	g := &gateway{cfg: cfg, opts: opts, log: opts.Logger, registry: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	g.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opts.Demo {
		stop, err := startDemo(cfg)
		if err != nil {
			return nil, err
		}
		g.closers = append(g.closers, stop)
	}
	if g.store, err = openStore(ctx, cfg, opts.Env.Stderr); err != nil {
		return nil, err
	}
	if err := bootstrapAdmin(ctx, cfg, g.store, opts.Env); err != nil {
		return nil, err
	}
	if g.prot, err = g.newProtection(ctx); err != nil {
		return nil, err
	}
	budget := func(ctx context.Context, p *tollgate.Principal) (any, error) { return g.meter.BudgetStates(ctx, p) }
	if g.identity, err = newIdentity(ctx, cfg, g.store, g.prot, budget, opts.Env, g.log); err != nil {
		return nil, err
	}
	g.closers = append(g.closers, g.identity.Stop)
	if g.meter, err = g.newMeter(ctx); err != nil {
		return nil, err
	}

	mux := newFront()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /readyz", httpx.Handle(g.log, g.ready))
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.registry, promhttp.HandlerOpts{}))
	auth := g.identity.auth
	auth.Register(mux)
	mux.Handle("GET /v1/me/usage", auth.Require(httpx.Handle(g.log, g.meter.MeUsageHandler())))
	if err := g.mountWebhooks(ctx, mux); err != nil {
		return nil, err
	}
	if err := g.mountJobs(ctx, mux); err != nil { // after the webhooks it sends through
		return nil, err
	}
	adminAPI := g.adminAPI()
	adminAPI.Register(mux)
	adminAPI.RegisterSelf(mux)
	web.New(web.Options{Auth: auth, Store: g.store, API: mux, RevokeSelf: adminAPI.RevokeSelf, Logger: g.log}).Register(mux)
	dataPlane, drain, err := g.dataPlane(ctx)
	if err != nil {
		return nil, err
	}
	g.drain = drain
	mux.setData(dataPlane)
	g.handler = g.prot.limiter.Middleware(mux)
	return g, nil
}

// adminAPI is the admin API with the handlers of metering and protection.
func (g *gateway) adminAPI() *admin.API {
	a := admin.New(admin.Options{Config: g.cfg, Store: g.store, Audit: g.store.Audit, Auth: g.identity.auth,
		Bans: g.prot.bans, ClientIP: g.prot.clientIP, Logger: g.log})
	a.Mount("GET /usage", g.meter.AdminUsageHandler())
	a.Mount("GET /budgets", g.meter.ListBudgetsHandler())
	a.Mount("PUT /budgets/{scope}/{id}", g.meter.PutBudgetHandler())
	a.Mount("DELETE /budgets/{scope}/{id}", g.meter.DeleteBudgetHandler())
	a.Mount("GET /bans", g.prot.bans.ListHandler) // changes to bans are the admin API's own, audited
	if g.jobs != nil {
		for pattern, h := range g.jobs.AdminHandlers() {
			a.Mount(pattern, h)
		}
	}
	return a
}

// ready answers /readyz: 200 when a metered call could be served now (the
// store answers, the ledger writes, budgets can be checked and limits are
// not refusing), 503 otherwise; the body says where limits and budgets are
// decided as probed now, not as the last call found them.
func (g *gateway) ready(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	ready, store := true, "ok"
	if err := g.store.Ping(ctx); err != nil {
		g.log.WarnContext(ctx, "not ready: store unreachable", "err", err)
		ready, store = false, "unreachable"
	}
	health, errs := g.meter.Health(ctx)
	for _, err := range errs {
		g.log.WarnContext(ctx, "not ready: metering", "err", err)
	}
	limits := g.prot.limiter.Probe(ctx)
	ready = ready && health.Ready() && limits.Mode != limit.ModeRefusing
	status, code := "ready", http.StatusOK
	if !ready {
		status, code = "not_ready", http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	httpx.WriteJSON(w, code, map[string]any{"status": status, "store": store,
		"ledger": health.Ledger, "budgets": health.Budgets, "limits": limits})
	return nil
}

// Serve listens and serves until ctx ends, then drains: the listener
// closes (new connections are refused), idle connections close, a call
// to a route still arriving on an open connection gets 503 with
// Connection: close,
// and in-flight ones and streams get server.drain_timeout to finish. Then
// the connections left are closed; Close settles their calls as
// cancelled.
func (g *gateway) Serve(ctx context.Context) error {
	s := g.cfg.Server
	ln := g.opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", g.cfg.Listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	ln = limit.Listener(ln, s.MaxConnections)
	errc := make(chan error, 2)
	var srv interface {
		Shutdown(context.Context) error
		Close() error
	}
	if g.cfg.TLS.Enabled() {
		https, err := g.serveTLS(ctx, ln, errc)
		if err != nil {
			ln.Close()
			return err
		}
		defer https.stop()
		srv = https
	} else {
		opts := edge.Options{Handler: g.handler, ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn)}
		limit.Harden(&opts, s)
		edgeSrv := edge.New(opts)
		go func() { errc <- edgeSrv.Serve(ln) }()
		srv = edgeSrv
	}
	g.log.Info("tollgate listening", "addr", ln.Addr().String(), "tls", g.cfg.TLS.Enabled(), "public_url", g.cfg.PublicURL, "store", storeName(g.cfg), "version", version)
	if g.opts.Env.Ready != nil {
		g.opts.Env.Ready(ln.Addr().String())
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	g.log.Info("draining", "timeout", s.DrainTimeout.String())
	if g.drain != nil {
		g.drain()
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.DrainTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		g.log.Warn("drain timeout passed; closing the connections left")
		_ = srv.Close()
		return nil
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// Close releases everything, newest first.
func (g *gateway) Close() {
	for i := len(g.closers) - 1; i >= 0; i-- {
		g.closers[i]()
	}
	g.closers = nil
	if g.store != nil {
		g.store.Close()
		g.store = nil
	}
}

// bootstrapAdmin creates the user "admin" when no user holds the admin
// role, and prints its password once (or takes TOLLGATE_ADMIN_PASSWORD).
// When an admin exists, a TOLLGATE_ADMIN_PASSWORD is ignored, and it says
// so loudly: logging in with it would fail.
func bootstrapAdmin(ctx context.Context, cfg *config.Config, store tollgate.Store, env Env) error {
	users, err := store.Users().Users(ctx, "")
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	password := env.Getenv("TOLLGATE_ADMIN_PASSWORD")
	var admins []string
	for _, u := range users {
		if u.Role == "admin" {
			admins = append(admins, u.Name)
		}
	}
	if len(admins) > 0 {
		if password != "" {
			fmt.Fprintf(env.Stderr, "\n  WARNING: TOLLGATE_ADMIN_PASSWORD is ignored: the store %s already has an admin user (%s).\n"+
				"  Set its password with: tollgate user passwd %s [--config FILE]\n\n", storeName(cfg), strings.Join(admins, ", "), admins[0])
		}
		return nil
	}
	printed := password == ""
	if printed {
		b := make([]byte, 18)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("generate admin password: %w", err)
		}
		password = base64.RawURLEncoding.EncodeToString(b)
	}
	if _, err := admin.CreateUser(ctx, cfg, store, auth.NewHasher(1), "admin", password, "default", "admin", ""); tollgate.ErrorCode(err) == tollgate.EConflict {
		if u, err := store.Users().UserByName(ctx, "admin"); err == nil && u.Role != "admin" {
			fmt.Fprintf(env.Stderr, "\n  WARNING: no user has the admin role, and the user \"admin\" has role %q.\n"+
				"  Create an admin with: tollgate user add NAME --role admin --password P [--config FILE]\n\n", u.Role)
		}
		return nil // or another replica starting at the same time created it
	} else if err != nil {
		return fmt.Errorf("create admin user: %w", err)
	}
	if printed {
		fmt.Fprintf(env.Stderr, "\n  created user \"admin\" with password: %s\n  (shown once; set TOLLGATE_ADMIN_PASSWORD to choose it)\n\n", password)
	} else {
		fmt.Fprintln(env.Stderr, `created user "admin" with the password from TOLLGATE_ADMIN_PASSWORD`)
	}
	return nil
}

// passphrase returns the key passphrase: TOLLGATE_KEY_PASSPHRASE, else the
// configured file's first line, else "".
func passphrase(cfg *config.Config, env Env) (string, error) {
	if p := env.Getenv("TOLLGATE_KEY_PASSPHRASE"); p != "" {
		return p, nil
	}
	if cfg.Tokens.KeyPassphraseFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(cfg.Tokens.KeyPassphraseFile)
	if err != nil {
		return "", fmt.Errorf("read key passphrase file: %w", err)
	}
	p := strings.TrimSpace(string(b))
	if p == "" {
		return "", errors.New("tokens.key_passphrase_file is empty")
	}
	return p, nil
}

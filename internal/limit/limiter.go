package limit

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// Options are the collaborators of a Limiter. Zero values give a one-node
// limiter with in-process counters.
type Options struct {
	// Rates and Slots are the shared (Redis) stores of cluster mode; nil
	// keeps counters in process.
	Rates tollgate.RateStore
	Slots tollgate.ConcurrencyStore
	// Ping tells whether the shared stores answer again after a failure.
	// Required with Rates.
	Ping func(context.Context) error
	// Timeout bounds one call to the shared stores before falling back.
	// Defaults to 250ms.
	Timeout time.Duration
	// PingInterval between checks while on the fallback. Defaults to 1s.
	PingInterval time.Duration
	// LeaseTTL is how long a concurrency slot outlives a replica that
	// crashed while holding it. Defaults to 30s.
	LeaseTTL time.Duration
	// Bans, when set, refuses banned IPs in Middleware and records invalid
	// tokens (401 responses) against the ban threshold.
	Bans *Bans
	// ClientIP returns the caller's address. Defaults to
	// ClientIPFunc(cfg.Server.TrustedProxies).
	ClientIP func(r *http.Request) string
	// LoginPaths get the tighter protection.login_rate_limit per IP: a
	// path on every method, or "METHOD /path" on that method only.
	// Defaults to /auth/login, /oauth/token and POST /login (showing the
	// login page is no attempt; posting it is).
	LoginPaths []string
	// Now is the clock of in-process counters. Defaults to time.Now.
	Now func() time.Time
	// Registerer receives the limiter's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Limiter applies rate limits and concurrency caps. It is a
// tollgate.Admission for configured routes and an http middleware for the
// per-IP limits that apply before authentication.
type Limiter struct {
	cfg      *config.Config
	opts     Options
	fo       *failover
	ipRate   tollgate.Rate
	login    tollgate.Rate
	plans    map[string]planLimits
	routes   map[string]tollgate.Rate
	models   map[string]tollgate.Rate // job models' rate_limit on creates
	prefix   string                   // lease id prefix, unique per process
	seq      atomic.Uint64
	refusals *prometheus.CounterVec
	refused  refusedIPs // IPs refused by a recent decision

	mu     sync.Mutex
	leases map[string][]string // remote leases held, for renewal
	stop   context.CancelFunc
	done   chan struct{}
}

type planLimits struct {
	user, tenant     tollgate.Rate // N == 0: none
	conc, tenantConc int
}

var _ tollgate.Admission = (*Limiter)(nil)

// New returns a Limiter for cfg. It returns an error when a configured rate
// does not parse (Config.Validate already rejects those).
func New(cfg *config.Config, opts Options) (*Limiter, error) {
	opts.Timeout = cmp.Or(opts.Timeout, 250*time.Millisecond)
	opts.PingInterval = cmp.Or(opts.PingInterval, time.Second)
	opts.LeaseTTL = cmp.Or(opts.LeaseTTL, 30*time.Second)
	opts.Logger = cmp.Or(opts.Logger, slog.Default())
	opts.Now = orNow(opts.Now)
	if opts.ClientIP == nil {
		opts.ClientIP = ClientIPFunc(cfg.Server.TrustedProxies)
	}
	if opts.LoginPaths == nil {
		opts.LoginPaths = []string{"/auth/login", "/oauth/token", "POST /login"}
	}
	if opts.Rates != nil && (opts.Slots == nil || opts.Ping == nil) {
		return nil, fmt.Errorf("limit: shared rates need shared slots and a ping")
	}
	l := &Limiter{cfg: cfg, opts: opts, plans: map[string]planLimits{}, routes: map[string]tollgate.Rate{}, models: map[string]tollgate.Rate{}, leases: map[string][]string{}}
	var err error
	if l.ipRate, err = parseRate(cfg.Protection.IPRateLimit); err != nil {
		return nil, fmt.Errorf("protection.ip_rate_limit: %w", err)
	}
	if l.login, err = parseRate(cfg.Protection.LoginRateLimit); err != nil {
		return nil, fmt.Errorf("protection.login_rate_limit: %w", err)
	}
	for name, p := range cfg.Plans {
		pl := planLimits{conc: p.Concurrency, tenantConc: p.TenantConcurrency}
		if pl.user, err = parseRate(p.RateLimit); err != nil {
			return nil, fmt.Errorf("plans.%s.rate_limit: %w", name, err)
		}
		if pl.tenant, err = parseRate(p.TenantRateLimit); err != nil {
			return nil, fmt.Errorf("plans.%s.tenant_rate_limit: %w", name, err)
		}
		l.plans[name] = pl
	}
	for _, r := range cfg.Routes {
		if l.routes[r.Name], err = parseRate(r.RateLimit); err != nil {
			return nil, fmt.Errorf("route %s rate_limit: %w", r.Name, err)
		}
	}
	for _, j := range cfg.Jobs {
		if l.models[j.Name], err = parseRate(j.RateLimit); err != nil {
			return nil, fmt.Errorf("job model %s rate_limit: %w", j.Name, err)
		}
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	l.prefix = hex.EncodeToString(id[:]) + "-"

	gauge := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tollgate_limit_fallback",
		Help: "1 while Redis is unreachable and limits are local (limit ÷ replicas) or refused.",
	})
	l.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_limit_refused_total",
		Help: "Requests refused by limits, by limit kind.",
	}, []string{"limit"})
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{gauge, l.refusals} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("limit: register metrics: %w", err)
			}
		}
	}
	l.fo = &failover{
		remoteRates: opts.Rates, remoteSlots: opts.Slots,
		localRates: NewMemoryRates(opts.Now), localSlots: NewMemorySlots(),
		ping: opts.Ping, timeout: opts.Timeout,
		replicas: max(1, cfg.Protection.Replicas), refuse: cfg.Protection.RedisFailure == "refuse",
		log: opts.Logger, gauge: gauge,
	}
	return l, nil
}

func parseRate(s string) (tollgate.Rate, error) {
	if s == "" || s == config.RateOff {
		return tollgate.Rate{}, nil
	}
	r, err := config.ParseRate(s)
	if err != nil {
		return tollgate.Rate{}, err
	}
	return tollgate.Rate{N: r.N, Period: r.Period}, nil
}

// Start runs the background work: lease renewal and, while Redis is down,
// the ping that brings it back. Stop ends it.
func (l *Limiter) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.stop, l.done = cancel, make(chan struct{})
	go func() {
		defer close(l.done)
		ping := time.NewTicker(l.opts.PingInterval)
		renew := time.NewTicker(l.opts.LeaseTTL / 3)
		defer ping.Stop()
		defer renew.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ping.C:
				l.fo.check(ctx)
			case <-renew.C:
				l.renew(ctx)
			}
		}
	}()
	return nil
}

// Stop ends the background work started by Start.
func (l *Limiter) Stop() {
	if l.stop != nil {
		l.stop()
		<-l.done
	}
}

func (l *Limiter) renew(ctx context.Context) {
	if l.opts.Slots == nil {
		return
	}
	l.mu.Lock()
	leases := make(map[string][]string, len(l.leases))
	for id, keys := range l.leases {
		leases[id] = keys
	}
	l.mu.Unlock()
	if len(leases) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.LeaseTTL/3)
	defer cancel()
	if err := l.opts.Slots.Renew(ctx, leases, l.opts.LeaseTTL); err != nil {
		l.opts.Logger.Warn("renew concurrency leases", "err", err)
	}
}

// Status reports where limits are decided, for /readyz details.
func (l *Limiter) Status() Status { return l.fo.status() }

// Probe asks the shared store now and returns the status that follows, so
// /readyz reports Redis as it is, not as the last call found it: on Redis a
// failed ping moves decisions to the fallback, on the fallback an answer
// moves them back.
func (l *Limiter) Probe(ctx context.Context) Status {
	l.fo.probe(ctx)
	return l.Status()
}

// Healthy reports whether limits are decided as configured: in process, or
// in Redis. It is false on the fallback and while refusing.
func (l *Limiter) Healthy() bool {
	m := l.Status().Mode
	return m == ModeLocal || m == ModeRemote
}

// Admit applies the caller's plan, tenant and route rate limits and the
// plan's concurrency caps in one decision (one Redis call in cluster mode):
// all admit and count, or none counts. The release function frees the
// concurrency slots; the data plane calls it exactly once.
func (l *Limiter) Admit(ctx context.Context, c *tollgate.Call) (func(context.Context, *tollgate.Outcome), error) {
	return l.admit(ctx, c, false)
}

// Creates returns the Admission of job creates (c.Route names the job
// model): the caller's plan and tenant rate limits, which a create spends
// like a proxied call, and the model's rate_limit, in one decision as in
// Admit. It takes no concurrency slot: the queue caps a user's running
// jobs, and a queued job is no request in flight.
func (l *Limiter) Creates() tollgate.Admission { return creates{l} }

type creates struct{ l *Limiter }

func (c creates) Admit(ctx context.Context, call *tollgate.Call) (func(context.Context, *tollgate.Outcome), error) {
	return c.l.admit(ctx, call, true)
}

// admit is Admit, or for a job create (job true) its rate limits alone.
func (l *Limiter) admit(ctx context.Context, c *tollgate.Call, job bool) (func(context.Context, *tollgate.Outcome), error) {
	keys, slots := l.callKeys(c, job)
	keys = append(keys, takeDeferred(c.Entry)...)
	if len(keys) == 0 && len(slots) == 0 {
		return func(context.Context, *tollgate.Outcome) {}, nil
	}
	var id string
	if len(slots) > 0 {
		id = l.prefix + strconv.FormatUint(l.seq.Add(1), 36)
	}
	d, store, full, err := l.fo.admit(ctx, id, keys, slots, l.opts.LeaseTTL)
	if err != nil {
		return nil, err
	}
	if full != "" {
		l.refusals.WithLabelValues(kindOf(full)).Inc()
		return nil, &tollgate.Error{Code: tollgate.ERateLimited, Message: "too many requests in flight; wait for one to finish", RetryAfter: 1}
	}
	if len(keys) > 0 {
		setHeaders(c.Entry, d)
		l.noteIP(d)
		if err := l.refusal(d, keys); err != nil {
			return nil, err
		}
	}
	if store == nil {
		return func(context.Context, *tollgate.Outcome) {}, nil
	}
	return l.releaser(store, id, slots), nil
}

// callKeys lists the rate keys and concurrency slots that apply to c; for
// a job create (job true) the rate keys alone, with the model's limit in
// place of a route's.
func (l *Limiter) callKeys(c *tollgate.Call, job bool) ([]tollgate.RateKey, []tollgate.SlotKey) {
	keys := make([]tollgate.RateKey, 0, 3)
	slots := make([]tollgate.SlotKey, 0, 2)
	p := c.Principal
	subject := "ip:" + c.ClientIP
	if p != nil {
		subject = "u:" + p.UserID
		pl, ok := l.plans[l.cfg.PlanName(p.Plan)]
		if !ok { // a plan named by an external token but not configured
			pl = l.plans[l.cfg.DefaultPlan]
		}
		if pl.user.N > 0 {
			keys = append(keys, tollgate.RateKey{Key: "rate:user:" + p.UserID, Rate: pl.user})
		}
		if pl.tenant.N > 0 && p.TenantID != "" {
			keys = append(keys, tollgate.RateKey{Key: "rate:tenant:" + p.TenantID, Rate: pl.tenant})
		}
		if pl.conc > 0 && !job {
			slots = append(slots, tollgate.SlotKey{Key: "conc:user:" + p.UserID, Limit: pl.conc})
		}
		if pl.tenantConc > 0 && p.TenantID != "" && !job {
			slots = append(slots, tollgate.SlotKey{Key: "conc:tenant:" + p.TenantID, Limit: pl.tenantConc})
		}
	}
	if r := l.models[c.Route]; job && r.N > 0 {
		keys = append(keys, tollgate.RateKey{Key: "rate:model:" + c.Route + ":" + subject, Rate: r})
	} else if r := l.routes[c.Route]; !job && r.N > 0 {
		keys = append(keys, tollgate.RateKey{Key: "rate:route:" + c.Route + ":" + subject, Rate: r})
	}
	return keys, slots
}

// releaser returns the release of id's slots in store; it runs at most
// once, also when the request's context is gone.
func (l *Limiter) releaser(store tollgate.ConcurrencyStore, id string, slots []tollgate.SlotKey) func(context.Context, *tollgate.Outcome) {
	names := make([]string, len(slots))
	for i, s := range slots {
		names[i] = s.Key
	}
	remote := l.opts.Slots != nil && store == l.opts.Slots
	if remote {
		l.mu.Lock()
		l.leases[id] = names
		l.mu.Unlock()
	}
	var once sync.Once
	return func(ctx context.Context, _ *tollgate.Outcome) {
		once.Do(func() {
			if remote {
				l.mu.Lock()
				delete(l.leases, id)
				l.mu.Unlock()
			}
			if remote {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), l.opts.Timeout)
				defer cancel()
			}
			if err := store.Release(ctx, id, names); err != nil {
				l.opts.Logger.Warn("release concurrency slot; its lease will expire", "err", err)
			}
		})
	}
}

// refusal turns a refused decision into a 429 with Retry-After that names
// the refusing limit with its period: "the user limit of 10/m".
func (l *Limiter) refusal(d tollgate.RateDecision, keys []tollgate.RateKey) error {
	if d.Allowed {
		return nil
	}
	kind := kindOf(d.Key)
	l.refusals.WithLabelValues(kind).Inc()
	secs := ceilSeconds(d.RetryAfter)
	rate := strconv.Itoa(d.Limit)
	for _, k := range keys {
		if k.Key == d.Key {
			rate = formatRate(k.Rate)
			break
		}
	}
	return &tollgate.Error{
		Code:       tollgate.ERateLimited,
		Message:    fmt.Sprintf("rate limit exceeded: the %s limit of %s; retry in %ds", kind, rate, secs),
		RetryAfter: secs,
	}
}

// formatRate writes a rate as it is configured: 10/s, 10/m, 10/h.
func formatRate(r tollgate.Rate) string {
	switch r.Period {
	case time.Second:
		return fmt.Sprintf("%d/s", r.N)
	case time.Minute:
		return fmt.Sprintf("%d/m", r.N)
	case time.Hour:
		return fmt.Sprintf("%d/h", r.N)
	}
	return fmt.Sprintf("%d per %s", r.N, r.Period)
}

func ceilSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}

// kindOf names the limit of a key for messages and metrics.
func kindOf(key string) string {
	for _, k := range []struct{ prefix, kind string }{
		{"rate:user:", "user"}, {"rate:tenant:", "tenant"}, {"rate:route:", "route"}, {"rate:model:", "model"},
		{"rate:ip:", "ip"}, {"rate:login:", "login"}, {"conc:user:", "user_concurrency"},
		{"conc:tenant:", "tenant_concurrency"},
	} {
		if len(key) >= len(k.prefix) && key[:len(k.prefix)] == k.prefix {
			return k.kind
		}
	}
	return "other"
}

package meter

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// Options are the meter's collaborators.
type Options struct {
	// Ledger stores usage records. Required.
	Ledger tollgate.Ledger
	// Budgets keeps per-user and per-tenant overrides and sent alerts.
	// Optional: without it plan budgets apply and alerts are not
	// de-duplicated across restarts.
	Budgets tollgate.BudgetStore
	// Counters hold live budget counters: Redis in cluster mode. Defaults
	// to in-process counters (single node).
	Counters tollgate.BudgetCounters
	// Cluster is true when other replicas share the ledger. The meter then
	// holds a lease in the ledger, renewed every third of
	// metering.lease_ttl, and reconciles the open records of replicas whose
	// lease expired, at start and at each renewal; records written before
	// leases are reconciled once older than the longest route timeout,
	// every minute. Defaults to false: one node reconciles every open
	// record at start.
	Cluster bool
	// Principal returns the verified caller of a request to the usage
	// handlers (nil when there is none). Required for the handlers.
	Principal func(*http.Request) *tollgate.Principal
	// Logger. Defaults to slog.Default().
	Logger *slog.Logger
	// Clock. Defaults to time.Now.
	Clock func() time.Time
	// HeartbeatInterval is how often the lease is renewed in cluster
	// mode. Defaults to a third of metering.lease_ttl.
	HeartbeatInterval time.Duration
	// HTTPClient posts budget webhooks. Defaults to a client with a 10s
	// timeout.
	HTTPClient *http.Client
	// WebhookBackoff is the first retry delay of a failed webhook,
	// doubling for each of up to 6 attempts. Defaults to 1s.
	WebhookBackoff time.Duration
	// DefaultMaxOutputTokens bounds the reservation of a call on a
	// token-priced route that sets no max_tokens and whose route declares
	// no max_cost. Defaults to 4096.
	DefaultMaxOutputTokens int64
}

// Meter meters calls, holds budgets and serves usage. It is a
// tollgate.Admission.
type Meter struct {
	cfg      *config.Config
	opts     Options
	ledger   tollgate.Ledger
	counters tollgate.BudgetCounters
	log      *slog.Logger
	now      func() time.Time
	routes   map[string]*routeMeter
	writer   *writer
	hooks    *webhooks
	override *overrideCache
	maxAge   time.Duration // reconcile cutoff in cluster mode
	live     live          // calls admitted and not yet released
	replica  string        // lease id in cluster mode; "" on one node
	leaseTTL time.Duration
	shared   bool // counters are shared by replicas (Redis)

	stopOnce sync.Once
	cancel   context.CancelFunc
	bg       sync.WaitGroup
}

var _ tollgate.Admission = (*Meter)(nil)

// routeMeter is a route's compiled prices and reservation bounds.
type routeMeter struct {
	cfg     config.Route
	price   priceTable
	models  map[string]*priceTable
	maxCost tollgate.Money // 0: none declared
	media   bool           // prices images, megapixels or audio: always measure bodies
}

func (r *routeMeter) table(model string) *priceTable {
	if t, ok := r.models[model]; ok {
		return t
	}
	return &r.price
}

// New compiles prices and returns a meter; Start it before use.
func New(cfg *config.Config, o Options) (*Meter, error) {
	if o.Ledger == nil {
		return nil, errors.New("meter: a ledger is required")
	}
	o.Logger = cmp.Or(o.Logger, slog.Default())
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	o.WebhookBackoff = cmp.Or(o.WebhookBackoff, time.Second)
	o.DefaultMaxOutputTokens = cmp.Or(o.DefaultMaxOutputTokens, 4096)
	shared := o.Counters != nil
	if o.Counters == nil {
		o.Counters = NewMemoryCounters(o.Clock)
	}
	m := &Meter{cfg: cfg, opts: o, ledger: o.Ledger, counters: o.Counters, log: o.Logger, now: o.Clock,
		routes: map[string]*routeMeter{}, shared: shared}
	for i, rc := range cfg.Routes {
		rm, err := compileRoute(rc)
		if err != nil {
			return nil, fmt.Errorf("routes[%d].price: %w", i, err)
		}
		m.routes[rc.Name] = rm
		m.maxAge = max(m.maxAge, rc.Timeout)
	}
	for i, jc := range cfg.Jobs { // a job is metered as a call of a route named after its model
		rm, err := compileRoute(config.Route{Name: jc.Name, Timeout: jc.Timeout, Price: jc.Price,
			MaxOutputAudio: jc.MaxOutputAudio})
		if err != nil {
			return nil, fmt.Errorf("jobs[%d].price: %w", i, err)
		}
		m.routes[jc.Name] = rm
	}
	m.maxAge = cmp.Or(m.maxAge, 300*time.Second) + time.Minute
	m.writer = newWriter(o.Ledger, m.log, cfg.Metering.MaxBatch, cfg.Metering.FlushInterval)
	m.writer.now = m.now
	m.hooks = newWebhooks(cfg.Webhooks, o.HTTPClient, m.log, o.WebhookBackoff)
	m.override = newOverrideCache(o.Budgets, m.now)
	if o.Cluster {
		m.replica = rand.Text()
	}
	m.leaseTTL = cmp.Or(cfg.Metering.LeaseTTL, 15*time.Second)
	return m, nil
}

func compileRoute(rc config.Route) (*routeMeter, error) {
	rc.MaxOutputAudio = cmp.Or(rc.MaxOutputAudio, rc.Timeout) // as config's defaults, for a config built by hand
	pt, err := compilePrice(rc.Price, nil)
	if err != nil {
		return nil, err
	}
	rm := &routeMeter{cfg: rc, price: pt, models: map[string]*priceTable{}}
	for name, mp := range rc.Price.Models {
		t, err := compilePrice(mp, &rm.price)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", name, err)
		}
		rm.models[name] = &t
	}
	if rc.MaxCost != "" {
		if rm.maxCost, err = tollgate.ParseMoney(rc.MaxCost); err != nil {
			return nil, err
		}
	}
	for _, t := range append([]*priceTable{&rm.price}, mapValues(rm.models)...) {
		for _, d := range []dim{dimImages, dimMegapixels, dimAudio} {
			rm.media = rm.media || t[d].maxPrice() > 0
		}
	}
	return rm, nil
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// Start reconciles records left open by a process that died (charged as
// metering.unknown_charge says): in cluster mode after taking this
// replica's lease, those of replicas whose lease expired. It starts the
// group-commit writer, the webhook sender and, in cluster mode, the
// heartbeat. Budget counters are loaded from the ledger as they are
// first used.
func (m *Meter) Start(ctx context.Context) error {
	if err := m.Heartbeat(ctx); err != nil {
		return err
	}
	if err := m.reconcile(ctx); err != nil {
		return err
	}
	bgCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	m.writer.start()
	m.bg.Go(func() { m.hooks.run(bgCtx) })
	if m.opts.Cluster {
		m.bg.Go(func() { m.runHeartbeat(bgCtx) })
		m.bg.Go(func() {
			t := time.NewTicker(time.Minute)
			defer t.Stop()
			for {
				select {
				case <-bgCtx.Done():
					return
				case <-t.C:
					if err := m.reconcile(bgCtx); err != nil && bgCtx.Err() == nil {
						m.log.Error("usage ledger: reconcile failed", "err", err)
					}
				}
			}
		})
	}
	return nil
}

// Stop settles the calls still running as cancelled (a drain cut them
// off; their later release does nothing), commits every queued record,
// then stops the webhook sender (alerts not yet delivered are dropped;
// they were logged). Stop the HTTP server first, so that only calls the
// drain timeout cut off are still running.
func (m *Meter) Stop() {
	m.stopOnce.Do(func() {
		m.settleCutOff()
		m.writer.stopAndFlush()
		if m.cancel != nil {
			m.cancel()
		}
		m.bg.Wait()
		m.endLease()
	})
}

// reconcile settles open records that no live process owns: every one on a
// single node at start, those older than the longest route timeout in a
// cluster. A reservation held in live counters for them is released when
// they are charged less than it.
func (m *Meter) reconcile(ctx context.Context) error {
	now := m.now()
	cutoff := now
	if m.opts.Cluster {
		cutoff = now.Add(-m.maxAge)
	}
	charge := m.cfg.Metering.UnknownCharge != "none"
	recs, err := m.ledger.Reconcile(ctx, cutoff, now, charge)
	if err != nil {
		return fmt.Errorf("reconcile usage: %w", err)
	}
	m.releaseReconciled(ctx, recs, "reconciled records left open by a stopped process")
	return nil
}

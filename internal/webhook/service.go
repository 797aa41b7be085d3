package webhook

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Config configures a Service.
type Config struct {
	// Secrets signs every message with its owner's key. Required.
	Secrets *Secrets
	// Store keeps start and completed messages until they are delivered or
	// given up, so they survive a restart. Nil keeps them in memory only.
	Store tollgate.WebhookDeliveryStore
	// AllowPrivate lets webhooks reach loopback, private, link-local and
	// other non-public addresses (webhook_allow_private). Defaults to false.
	AllowPrivate bool
	// MaxAttempts bounds the attempts of one message. Defaults to 8.
	MaxAttempts int
	// MaxElapsed bounds the time from a message's creation to its last
	// attempt. Defaults to 30m.
	MaxElapsed time.Duration
	// InitialBackoff is the wait after the first failed attempt; each
	// further one doubles it, with jitter. Defaults to 1s.
	InitialBackoff time.Duration
	// MaxBackoff caps a wait, also one a Retry-After header asks for.
	// Defaults to 5m.
	MaxBackoff time.Duration
	// AttemptTimeout bounds one attempt, from dial to the response head.
	// Defaults to 10s.
	AttemptTimeout time.Duration
	// Throttle is the least time between two output or logs messages of one
	// prediction. Defaults to 500ms.
	Throttle time.Duration
	// Concurrency bounds the requests in flight at once. Defaults to 16.
	Concurrency int
	// MaxPending bounds the predictions with messages waiting in memory.
	// Past it, start and completed messages wait in the store for room and
	// output and logs messages are dropped. Defaults to 10000.
	MaxPending int
	// Lease is how long a stored message stays with the process that
	// handles it before another may claim it. Defaults to 2m; it must
	// exceed AttemptTimeout.
	Lease time.Duration
	// PollInterval is how often stored messages nobody holds (left by a
	// process that stopped) are claimed. Defaults to 10s.
	PollInterval time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger receives given-up and failed deliveries. Defaults to
	// slog.Default().
	Logger *slog.Logger
	// Registerer, when set, receives the delivery metrics
	// (tollgate_webhook_*). Defaults to none.
	Registerer prometheus.Registerer
}

func (c *Config) fill() error {
	c.MaxAttempts = cmp.Or(c.MaxAttempts, 8)
	c.MaxElapsed = cmp.Or(c.MaxElapsed, 30*time.Minute)
	c.InitialBackoff = cmp.Or(c.InitialBackoff, time.Second)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, 5*time.Minute)
	c.AttemptTimeout = cmp.Or(c.AttemptTimeout, 10*time.Second)
	c.Throttle = cmp.Or(c.Throttle, 500*time.Millisecond)
	c.Concurrency = cmp.Or(c.Concurrency, 16)
	c.MaxPending = cmp.Or(c.MaxPending, 10000)
	c.Lease = cmp.Or(c.Lease, 2*time.Minute)
	c.PollInterval = cmp.Or(c.PollInterval, 10*time.Second)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.Secrets == nil:
		return errors.New("webhook config: Secrets is required")
	case c.MaxAttempts < 0 || c.MaxElapsed < 0 || c.InitialBackoff < 0 || c.MaxBackoff < 0 ||
		c.AttemptTimeout < 0 || c.Throttle < 0 || c.Concurrency < 0 || c.MaxPending < 0 || c.PollInterval < 0:
		return errors.New("webhook config: values must not be negative")
	case c.Lease <= c.AttemptTimeout:
		return errors.New("webhook config: Lease must exceed AttemptTimeout")
	}
	return nil
}

// Event is one webhook a prediction asks for.
type Event struct {
	PredictionID string
	TenantID     string // the prediction's owner, whose secret signs it
	UserID       string
	Type         string // tollgate.WebhookStart, WebhookOutput, WebhookLogs or WebhookCompleted
	URL          string // the prediction's webhook
	// Filter is the prediction's webhook_events_filter; empty means every
	// event.
	Filter []string
	// Body is the prediction as JSON, as GET /v1/predictions/{id} shows it.
	Body []byte
}

// Service delivers webhooks in the background: Send never waits on a
// receiver. Messages of one prediction go out one at a time and in order;
// output and logs are throttled and coalesced (a message carries the whole
// prediction, so a newer one holds all an older one did); a newer message
// of a prediction replaces an older one still waiting for a retry; nothing
// of a prediction is sent after its completed message. Start and completed
// messages are stored before Send returns and survive a restart; output and
// logs live in memory only, since the completed message carries them.
type Service struct {
	cfg     Config
	client  *http.Client
	sem     chan struct{} // one token per request in flight
	metrics *metrics

	mu       sync.Mutex
	ctx      context.Context // nil until Start, and after Stop
	lanes    map[string]*lane
	finished map[string]time.Time // predictions whose completed message was taken, by when
	held     map[string]*message  // stored messages this process holds, by ID

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New returns a Service; Start begins delivering.
func New(cfg Config) (*Service, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	s := &Service{
		cfg:      cfg,
		client:   newClient(cfg.AllowPrivate, cfg.AttemptTimeout),
		sem:      make(chan struct{}, cfg.Concurrency),
		lanes:    map[string]*lane{},
		finished: map[string]time.Time{},
		held:     map[string]*message{},
	}
	var err error
	if s.metrics, err = newMetrics(cfg.Registerer, s.pending); err != nil {
		return nil, err
	}
	return s, nil
}

// Start begins delivering, and claims the stored messages nobody holds
// now and every PollInterval.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx != nil {
		return errors.New("webhook service already started")
	}
	ctx, s.stop = context.WithCancel(ctx)
	s.ctx = ctx
	s.wg.Go(func() { s.poll(ctx) })
	return nil
}

// Stop ends what Start began: attempts in flight are canceled and stored
// messages are released at once for the next process to claim. Output and
// logs messages not yet sent are dropped.
func (s *Service) Stop() {
	s.mu.Lock()
	stop := s.stop
	s.ctx, s.stop = nil, nil
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.wg.Wait()
	s.mu.Lock()
	// A completed message released here may come back after a Start.
	clear(s.finished)
	s.mu.Unlock()
}

// Send queues ev unless its filter leaves it out. It never waits on the
// receiver; start and completed messages are written to the store first,
// so call it after the change that caused it is committed, outside any
// store transaction (on SQLite one writer at a time would wait on itself).
// EInvalid for a bad event or URL (check URLs with CheckURL when the
// prediction is created, to answer 422 there); an error from the store for
// a message that could not be kept.
func (s *Service) Send(ctx context.Context, ev Event) error {
	if err := ev.validate(); err != nil {
		return err
	}
	if len(ev.Filter) > 0 && !slices.Contains(ev.Filter, ev.Type) {
		return nil
	}
	m := &message{row: &tollgate.WebhookDelivery{
		ID: newMessageID(), TenantID: ev.TenantID, UserID: ev.UserID, PredictionID: ev.PredictionID,
		Event: ev.Type, URL: ev.URL, Body: ev.Body, CreatedAt: s.cfg.Now(),
	}}
	m.durable = s.cfg.Store != nil && !throttled(ev.Type)
	if m.durable {
		// Leased to this process while it has room; otherwise left for the
		// poller to claim when there is.
		m.row.LeaseUntil = m.row.CreatedAt
		if s.hasRoom(ev.PredictionID) {
			m.row.LeaseUntil = m.row.CreatedAt.Add(s.cfg.Lease)
		}
		if err := s.cfg.Store.CreateWebhookDelivery(ctx, m.row); err != nil {
			return fmt.Errorf("store webhook: %w", err)
		}
		if !m.row.LeaseUntil.After(m.row.CreatedAt) {
			return nil
		}
	}
	s.enqueue(m)
	return nil
}

func (ev *Event) validate() error {
	switch {
	case ev.PredictionID == "" || ev.TenantID == "" || ev.UserID == "":
		return tollgate.Errorf(tollgate.EInvalid, "a webhook event needs a prediction and its owner")
	case !tollgate.IsWebhookEvent(ev.Type):
		return tollgate.Errorf(tollgate.EInvalid, "unknown webhook event %q", ev.Type)
	}
	if err := ValidateFilter(ev.Filter); err != nil {
		return err
	}
	_, err := parseURL(ev.URL)
	return err
}

// ValidateFilter reports EInvalid unless every entry of a
// webhook_events_filter is a known event.
func ValidateFilter(filter []string) error {
	for _, f := range filter {
		if !tollgate.IsWebhookEvent(f) {
			return tollgate.Errorf(tollgate.EInvalid, "webhook_events_filter: unknown event %q (want start, output, logs or completed)", f)
		}
	}
	return nil
}

// pending returns the number of predictions with messages waiting here.
func (s *Service) pending() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return float64(len(s.lanes))
}

// hasRoom reports whether a message of the prediction can wait in memory.
func (s *Service) hasRoom(predictionID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.lanes[predictionID]
	return ok || len(s.lanes) < s.cfg.MaxPending
}

// poll claims the stored messages nobody holds, now and every
// PollInterval, and forgets finished predictions after a while.
func (s *Service) poll(ctx context.Context) {
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		if s.cfg.Store != nil {
			s.renew(ctx)
			s.claim(ctx)
		}
		s.forget()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) claim(ctx context.Context) {
	s.mu.Lock()
	room := s.cfg.MaxPending - len(s.lanes)
	s.mu.Unlock()
	if room <= 0 {
		return
	}
	now := s.cfg.Now()
	rows, err := s.cfg.Store.ClaimWebhookDeliveries(ctx, now, now.Add(s.cfg.Lease), room)
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Logger.Warn("claim stored webhooks", "err", err)
		}
		return
	}
	for _, r := range rows {
		s.mu.Lock()
		_, mine := s.held[r.ID]
		s.mu.Unlock()
		if !mine { // one whose lease ran out while it waited here is not taken twice
			s.enqueue(&message{row: r, durable: true})
		}
	}
}

// renew extends the leases of held messages that would end before the
// next polls, so that no other process takes a message waiting here (for
// a free request slot, or behind another message of its prediction).
func (s *Service) renew(ctx context.Context) {
	now := s.cfg.Now()
	soon := now.Add(2 * s.cfg.PollInterval)
	s.mu.Lock()
	held := make([]*message, 0, len(s.held))
	for _, m := range s.held {
		held = append(held, m)
	}
	s.mu.Unlock()
	for _, m := range held {
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		due := m.leaseUntil.Before(soon)
		m.mu.Unlock()
		if due {
			s.extend(m, now.Add(s.cfg.Lease+2*s.cfg.PollInterval))
		}
	}
}

// forget drops the finished predictions older than the longest a late
// message of theirs could come.
func (s *Service) forget() {
	horizon := s.cfg.Now().Add(-s.cfg.MaxElapsed)
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, at := range s.finished {
		if at.Before(horizon) {
			delete(s.finished, id)
		}
	}
}

// newMessageID returns a webhook-id: "msg_" and 26 random base32
// characters.
func newMessageID() string { return "msg_" + rand.Text() }

package jobs

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/internal/comfyui"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/policy"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// Options are the service's collaborators.
type Options struct {
	// Store is the durable queue. Required.
	Store tollgate.JobStore
	// Blobs keeps results. Required.
	Blobs tollgate.BlobStore
	// LinkKey signs result and stream links (at least 32 bytes). Required.
	LinkKey []byte
	// Admission meters jobs: it reserves a job's most expensive outcome at
	// submit in a held usage record and settles it once when the job
	// ends, in whichever process ends it (the meter). It must be a
	// tollgate.HeldSettler. Optional: without it jobs are not metered.
	Admission tollgate.Admission
	// Limits, when set, admits a create before Admission does (the rate
	// limits a create spends), so a create it refuses holds no
	// reservation. Defaults to none.
	Limits tollgate.Admission
	// Backends run each job model's jobs, by model name. Defaults to an
	// HTTPBackend for every model of backend http, a comfyui.Backend for
	// every model of backend comfyui and a GradioBackend for every model of
	// backend gradio.
	Backends map[string]tollgate.Backend
	// Principal returns the verified caller of a request (nil when there
	// is none). Required for the handlers.
	Principal func(*http.Request) *tollgate.Principal
	// Cluster is true when other replicas share the store: jobs found
	// processing at start may be theirs, and are taken over only once
	// the lease of the replica running them lapsed. Defaults to false,
	// where they are re-attached at start when their backend can follow
	// a job it did not submit (tollgate.Reattacher), else failed (their
	// runner died with the process).
	Cluster bool
	// SubmitOnly makes this process take, serve and cancel predictions
	// but run none: other replicas sharing the store run them. Defaults
	// to false.
	SubmitOnly bool
	// PollInterval is how often the queue is looked at without a wake-up
	// (jobs queued by other replicas, Cancel-After). Defaults to 1s.
	PollInterval time.Duration
	// Webhooks delivers prediction webhooks (started and stopped by the
	// caller). Defaults to none: a prediction that names a webhook is
	// refused.
	Webhooks Webhooks
	// OwnerDisabled reports whether a job's owner may no longer run jobs
	// (its tenant was disabled after the job was queued): such a job
	// fails when its turn comes, without reaching the upstream or costing
	// anything (OwnerDisabledMessage), and the result files of the
	// owner's jobs are refused. Jobs already running finish. Optional.
	OwnerDisabled func(tollgate.Owner) bool
	// Metrics registers the jobs' collectors (queue depth and wait time
	// per model, running jobs per upstream). Nil keeps them unregistered.
	Metrics prometheus.Registerer
	// Logger. Defaults to slog.Default().
	Logger *slog.Logger
	// Clock. Defaults to time.Now.
	Clock func() time.Time
}

// model is one job model with what runs it.
type model struct {
	cfg     *config.JobModel
	rules   *policy.InputRules
	backend tollgate.Backend
	wake    chan struct{}
}

// Service is the jobs feature: it takes predictions, schedules them fairly
// onto their models' upstreams, runs them through the backends, stores
// their results and meters them. Start it before use; Stop it after the
// HTTP server.
type Service struct {
	cfg     *config.Config
	opts    Options
	store   tollgate.JobStore
	blobs   tollgate.BlobStore
	links   *links
	log     *slog.Logger
	now     func() time.Time
	models  map[string]*model
	hub     *hub
	metrics *metrics
	maxBody int64 // largest create body: 1 MiB, or what the largest file input needs
	meter   tollgate.HeldSettler

	mu      sync.Mutex
	running map[string]*runningJob // jobs this process runs

	stopOnce sync.Once
	cancel   context.CancelFunc
	bg       sync.WaitGroup
	runs     sync.WaitGroup
}

// runningJob is a job this process runs.
type runningJob struct {
	cancel  context.CancelCauseFunc
	run     *tollgate.JobRun
	handle  string
	stored  bool // handle is in the store: the job can be re-attached
	resumed bool // re-attached after a restart, not submitted here
	// attempts is the job's Attempts once dispatched here; unsent is set
	// when nothing ran upstream (never dispatched, or refused), so the
	// job may be queued again instead of failed.
	attempts int
	unsent   bool
}

// Causes that end a running job's context.
var (
	errCanceled = errors.New("canceled by its owner")
	errStopping = errors.New("the gateway stopped")
)

// New compiles every job model's rules and backend.
func New(cfg *config.Config, o Options) (*Service, error) {
	if o.Store == nil || o.Blobs == nil || len(o.LinkKey) < 32 {
		return nil, errors.New("jobs: a store, a result store and a 32-byte link key are required")
	}
	o.Logger = cmp.Or(o.Logger, slog.Default())
	if o.Clock == nil {
		o.Clock = time.Now
	}
	o.PollInterval = cmp.Or(o.PollInterval, time.Second)
	s := &Service{cfg: cfg, opts: o, store: o.Store, blobs: o.Blobs, log: o.Logger, now: o.Clock,
		links:  &links{key: o.LinkKey, base: strings.TrimSuffix(cfg.PublicURL, "/")},
		models: map[string]*model{}, hub: newHub(),
		running: map[string]*runningJob{}, maxBody: 1 << 20}
	s.opts = o
	if o.Admission != nil {
		var ok bool
		if s.meter, ok = o.Admission.(tollgate.HeldSettler); !ok {
			return nil, errors.New("jobs: the admission must settle held calls (tollgate.HeldSettler)")
		}
	}
	var err error
	if s.metrics, err = newMetrics(o.Metrics, o.Store); err != nil {
		return nil, fmt.Errorf("jobs metrics: %w", err)
	}
	all := cfg.AllJobModels() // comfyui routes' models after the configured ones
	for i := range all {
		jc := &all[i]
		rules, err := policy.CompileInputRules(jc.Rules)
		if err != nil {
			return nil, fmt.Errorf("jobs[%d] (%s).%w", i, jc.Name, err)
		}
		b := o.Backends[jc.Name]
		if b == nil && jc.Graph {
			return nil, fmt.Errorf("comfyui route %s: no backend given for its prompts", jc.Name)
		}
		if b == nil && jc.Backend == config.BackendComfyUI {
			if b, err = comfyui.New(jc, comfyui.Options{Poll: o.PollInterval, Logger: o.Logger}); err != nil {
				return nil, fmt.Errorf("jobs[%d] (%s): %w", i, jc.Name, err)
			}
		}
		if b == nil && jc.Backend == config.BackendGradio {
			gb := NewGradioBackend(jc)
			gb.Clock, gb.UserIDHeader, gb.TenantIDHeader = o.Clock, cfg.Headers.UserID, cfg.Headers.TenantID
			b = gb
		}
		if b == nil {
			maxOut, _ := config.ParseSize(jc.MaxOutput)
			b = &HTTPBackend{Path: jc.Path, UpstreamCall: UpstreamCall{MaxOutput: maxOut, Clock: o.Clock,
				UserIDHeader: cfg.Headers.UserID, TenantIDHeader: cfg.Headers.TenantID}}
		}
		s.models[jc.Name] = &model{cfg: jc, rules: rules, backend: b, wake: make(chan struct{}, 1)}
		var files int64
		for _, in := range jc.Inputs {
			if config.FileInput(in.Type) {
				n, _ := config.ParseSize(in.MaxSize)
				files += n/3*4 + 4 // as base64
			}
		}
		s.maxBody = max(s.maxBody, 1<<20, files+64<<10)
	}
	return s, nil
}

// Start takes over from a process that stopped: on a single node it
// re-attaches or fails the jobs left processing, and it settles the jobs
// that ended unsettled (see recover.go). It then starts one scheduling
// loop per job model and the Cancel-After sweeper. Start the meter
// first.
func (s *Service) Start(ctx context.Context) error {
	bgCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	if err := s.recover(ctx, bgCtx); err != nil {
		cancel()
		return err
	}
	for _, m := range s.models {
		if !s.opts.SubmitOnly {
			s.bg.Go(func() { s.schedule(bgCtx, m) })
		}
	}
	s.bg.Go(func() { s.sweep(bgCtx) })
	return nil
}

// Stop ends the loops, then the jobs running here: a job whose upstream
// keeps it by a handle in the store (ComfyUI's prompt id) is left running
// there, to be re-attached after the restart (in cluster mode, by another
// replica); one not yet sent to its upstream is queued again; any other
// is finished as failed, since its upstream call ends with the process,
// and settled;
// on a single node so are jobs that ended unsettled (canceled from the
// command line). The usage records of jobs still queued stay open and held:
// whichever process ends them settles them. Stop the HTTP server first
// and the meter after.
func (s *Service) Stop() {
	s.stopOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		s.bg.Wait()
		s.mu.Lock()
		for _, r := range s.running {
			cause := errStopping
			if _, ok := s.models[r.run.Job.Model].backend.(tollgate.Reattacher); ok && r.stored {
				cause = tollgate.ErrDetached // left running, re-attached after the restart
			}
			r.cancel(cause)
		}
		s.mu.Unlock()
		s.runs.Wait()
		if !s.opts.Cluster { // replicas left running do it within a minute
			if err := s.adopt(context.Background(), orphanAge); err != nil {
				s.log.Error("jobs: settling ended jobs failed", "err", err)
			}
		}
	})
}

// Submission is one create request, after the HTTP layer parsed it.
type Submission struct {
	Model          string
	Input          json.RawMessage
	IdempotencyKey string
	// BodyHash identifies the request body for the idempotency key.
	BodyHash string
	// CancelAfter, when positive, cancels the job if it has not started
	// by then.
	CancelAfter time.Duration
	// Webhook, when set, receives the events named in WebhookEvents (all
	// four when empty).
	Webhook       string
	WebhookEvents []string
	// Files resolves the caller's upload URLs in file inputs to data:
	// URIs; nil leaves every value as it is.
	Files func(string) (string, error)
	// ID, when set, is the new job's id (a comfyui route's prompt_id,
	// minted before the prompt is queued). Defaults to a new id.
	ID string
	// Entry takes the RateLimit-* headers of the limits the create
	// spends; nil sets none.
	Entry *tollgate.Entry
}

// Submit validates a prediction, reserves its most expensive outcome and
// queues it. A repeated idempotency key with the same body returns the
// first job and created false.
func (s *Service) Submit(ctx context.Context, p *tollgate.Principal, sub Submission) (*tollgate.Job, bool, error) {
	m := s.models[sub.Model]
	if m == nil {
		return nil, false, tollgate.Errorf(tollgate.ENotFound, "model %s does not exist", sub.Model)
	}
	if p == nil {
		return nil, false, tollgate.Errorf(tollgate.EUnauthorized, "authentication required")
	}
	if !p.HasScopes(m.cfg.Scopes) {
		return nil, false, tollgate.Errorf(tollgate.EForbidden, "model %s requires the scopes %s", m.cfg.Name, strings.Join(m.cfg.Scopes, " "))
	}
	if prep, ok := m.backend.(tollgate.InputPreparer); ok {
		return s.submitPrepared(ctx, p, m, prep, sub)
	}
	input, media, err := checkInput(m.cfg, s.cfg.PlanName(p.Plan), sub.Input, sub.Files)
	if err != nil {
		return nil, false, err
	}
	if err := m.rules.Check(p, input, media); err != nil {
		return nil, false, err
	}
	if c, ok := m.backend.(tollgate.InputChecker); ok {
		if err := c.CheckInput(ctx, m.cfg.Upstreams[0], input); tollgate.ErrorCode(err) == tollgate.EInputInvalid {
			return nil, false, err
		}
	}
	var events []string
	if sub.Webhook != "" {
		if events, err = s.checkWebhook(ctx, sub.Webhook, sub.WebhookEvents); err != nil {
			return nil, false, err
		}
	} else if len(sub.WebhookEvents) > 0 {
		return nil, false, tollgate.Errorf(tollgate.EInputInvalid, "webhook_events_filter: needs a webhook")
	}
	raw, err := json.Marshal(input)
	if err != nil {
		return nil, false, fmt.Errorf("encode input: %w", err)
	}
	return s.queue(ctx, p, m, sub, raw, events)
}

// queue reserves a validated job's most expensive outcome and stores it
// in the queue.
func (s *Service) queue(ctx context.Context, p *tollgate.Principal, m *model, sub Submission, raw json.RawMessage, events []string) (*tollgate.Job, bool, error) {
	now := s.now()
	planName := s.cfg.PlanName(p.Plan)
	plan := s.cfg.Plans[planName]
	j := &tollgate.Job{ID: cmp.Or(sub.ID, newJobID()), Model: m.cfg.Name, Owner: tollgate.Owner{TenantID: p.TenantID, UserID: p.UserID},
		Plan: planName, Priority: plan.Priority, MaxRunning: plan.Concurrency, Input: raw,
		IdempotencyKey: sub.IdempotencyKey, BodyHash: sub.BodyHash, CreatedAt: now,
		Webhook: sub.Webhook, WebhookEvents: events}
	if sub.CancelAfter > 0 {
		j.CancelAt = now.Add(sub.CancelAfter)
	}
	release := func(context.Context, *tollgate.Outcome) {}
	var err error
	if admit := s.admission(); admit != nil {
		call := &tollgate.Call{RequestID: j.ID, NewID: true, Start: now, Principal: p, Route: m.cfg.Name,
			Model: m.cfg.Name, Method: http.MethodPost, Path: "/v1/predictions", BytesIn: int64(len(sub.Input)), Entry: sub.Entry, Held: true}
		if release, err = admit.Admit(ctx, call); err != nil {
			return nil, false, err
		}
	}
	got, created, err := s.store.Enqueue(ctx, j, tollgate.QueueLimits{MaxQueued: plan.MaxQueued})
	if err != nil || !created {
		release(ctx, &tollgate.Outcome{Result: tollgate.ResultRejected, End: s.now()})
		var te *tollgate.Error
		if errors.As(err, &te) && te.Code == tollgate.EQueueFull {
			te.RetryAfter = max(1, int(m.cfg.Timeout.Seconds()/10))
		}
		return got, false, err
	}
	s.wake(m)
	return got, true, nil
}

// admission is the chain a create goes through: the limits, then the
// meter; nil when neither is set.
func (s *Service) admission() tollgate.Admission {
	switch {
	case s.opts.Limits == nil:
		return s.opts.Admission
	case s.opts.Admission == nil:
		return s.opts.Limits
	}
	return tollgate.Admissions{s.opts.Limits, s.opts.Admission}
}

// newJobID returns a prediction id: 26 lower-case base32 characters (130
// random bits), the shape of the predictions API's ids.
func newJobID() string { return strings.ToLower(rand.Text()) }

func (s *Service) wake(m *model) {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Cancel cancels the owner's prediction: a queued one ends canceled and is
// charged nothing; a running one is stopped and charged what it used.
func (s *Service) Cancel(ctx context.Context, o tollgate.Owner, id string) (*tollgate.Job, error) {
	j, err := s.store.Cancel(ctx, o, id, s.now())
	if err != nil {
		return nil, err
	}
	switch j.Status {
	case tollgate.JobCanceled:
		s.ending(ctx, j)
	case tollgate.JobProcessing:
		s.mu.Lock()
		r := s.running[j.ID]
		s.mu.Unlock()
		if r != nil {
			if cerr := s.models[j.Model].backend.Cancel(context.WithoutCancel(ctx), r.run, r.handle); cerr != nil {
				s.log.Warn("jobs: the upstream did not take a cancel", "job", j.ID, "err", cerr)
			}
			r.cancel(errCanceled)
		}
	}
	return j, nil
}

// Job returns the owner's prediction.
func (s *Service) Job(ctx context.Context, o tollgate.Owner, id string) (*tollgate.Job, error) {
	return s.store.Job(ctx, o, id)
}

// ended settles an ended job's usage record, unless another process did,
// and tells its watchers.
func (s *Service) ended(ctx context.Context, j *tollgate.Job) {
	s.settle(ctx, j)
	s.hub.publish(j.ID, event{done: j})
}

// ending records in the metrics that this process ended j, then settles
// it.
func (s *Service) ending(ctx context.Context, j *tollgate.Job) {
	s.metrics.finished.WithLabelValues(j.Model, string(j.Status)).Inc()
	s.notify(j, "completed")
	s.ended(ctx, j)
}

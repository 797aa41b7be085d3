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
	// submit and settles once when the job ends (the meter). Optional:
	// without it jobs are not metered.
	Admission tollgate.Admission
	// Backends run each job model's jobs, by model name. Defaults to an
	// HTTPBackend for every model of backend http, a comfyui.Backend for
	// every model of backend comfyui and a GradioBackend for every model of
	// backend gradio.
	Backends map[string]tollgate.Backend
	// Principal returns the verified caller of a request (nil when there
	// is none). Required for the handlers.
	Principal func(*http.Request) *tollgate.Principal
	// Cluster is true when other replicas share the store: jobs found
	// processing at start may be theirs and are left alone. Defaults to
	// false, where they are failed (their runner died with the process).
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

	mu       sync.Mutex
	releases map[string]func(context.Context, *tollgate.Outcome) // open usage records by job id
	running  map[string]*runningJob                              // jobs this process runs

	stopOnce sync.Once
	cancel   context.CancelFunc
	bg       sync.WaitGroup
	runs     sync.WaitGroup
}

// runningJob is a job this process runs.
type runningJob struct {
	cancel context.CancelCauseFunc
	run    *tollgate.JobRun
	handle string
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
		releases: map[string]func(context.Context, *tollgate.Outcome){}, running: map[string]*runningJob{}, maxBody: 1 << 20}
	s.opts = o
	var err error
	if s.metrics, err = newMetrics(o.Metrics, o.Store); err != nil {
		return nil, fmt.Errorf("jobs metrics: %w", err)
	}
	for i := range cfg.Jobs {
		jc := &cfg.Jobs[i]
		rules, err := policy.CompileInputRules(jc.Rules)
		if err != nil {
			return nil, fmt.Errorf("jobs[%d] (%s).%w", i, jc.Name, err)
		}
		b := o.Backends[jc.Name]
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

// Start fails the jobs a dead process left processing (single node), then
// starts one scheduling loop per job model and the Cancel-After sweeper.
func (s *Service) Start(ctx context.Context) error {
	if !s.opts.Cluster {
		if err := s.failOrphans(ctx); err != nil {
			return err
		}
	}
	bgCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	for _, m := range s.models {
		if !s.opts.SubmitOnly {
			s.bg.Go(func() { s.schedule(bgCtx, m) })
		}
	}
	s.bg.Go(func() { s.sweep(bgCtx) })
	return nil
}

// Stop ends the loops, then the jobs running here: each is finished as
// failed, since its upstream call ends with the process. It then settles
// the jobs submitted here that another replica ended; the usage records
// of jobs submitted here and still queued or running elsewhere stay open
// (the meter reconciles them). Stop the HTTP server first and the meter
// after.
func (s *Service) Stop() {
	s.stopOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		s.bg.Wait()
		s.mu.Lock()
		for _, r := range s.running {
			r.cancel(errStopping)
		}
		s.mu.Unlock()
		s.runs.Wait()
		s.settleRemote(context.Background())
	})
}

// failOrphans ends jobs left processing by a process that died: their
// upstream call died with it.
func (s *Service) failOrphans(ctx context.Context) error {
	orphans, err := s.store.Running(ctx)
	if err != nil {
		return fmt.Errorf("find jobs left running: %w", err)
	}
	for _, j := range orphans {
		_, err := s.store.Finish(ctx, j.ID, tollgate.JobResult{Status: tollgate.JobFailed,
			Error: "the gateway restarted while the job ran", CompletedAt: s.now()})
		if err != nil && tollgate.ErrorCode(err) != tollgate.EConflict {
			return fmt.Errorf("fail a job left running: %w", err)
		}
	}
	if len(orphans) > 0 {
		s.log.Warn("jobs: failed jobs left running by a stopped process", "jobs", len(orphans))
	}
	return nil
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
	now := s.now()
	planName := s.cfg.PlanName(p.Plan)
	plan := s.cfg.Plans[planName]
	j := &tollgate.Job{ID: newJobID(), Model: m.cfg.Name, Owner: tollgate.Owner{TenantID: p.TenantID, UserID: p.UserID},
		Plan: planName, Priority: plan.Priority, MaxRunning: plan.Concurrency, Input: raw,
		IdempotencyKey: sub.IdempotencyKey, BodyHash: sub.BodyHash, CreatedAt: now,
		Webhook: sub.Webhook, WebhookEvents: events}
	if sub.CancelAfter > 0 {
		j.CancelAt = now.Add(sub.CancelAfter)
	}
	release := func(context.Context, *tollgate.Outcome) {}
	if s.opts.Admission != nil {
		call := &tollgate.Call{RequestID: j.ID, NewID: true, Start: now, Principal: p, Route: m.cfg.Name,
			Model: m.cfg.Name, Method: http.MethodPost, Path: "/v1/predictions", BytesIn: int64(len(sub.Input))}
		if release, err = s.opts.Admission.Admit(ctx, call); err != nil {
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
	s.mu.Lock()
	s.releases[got.ID] = release
	s.mu.Unlock()
	s.wake(m)
	return got, true, nil
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

// ended settles an ended job's usage record, when this process opened it
// and has not settled it yet, and tells its watchers. A job canceled
// before it started is settled as refused: charged nothing.
func (s *Service) ended(ctx context.Context, j *tollgate.Job) {
	s.mu.Lock()
	release := s.releases[j.ID]
	delete(s.releases, j.ID)
	s.mu.Unlock()
	if release != nil {
		out := &tollgate.Outcome{End: j.CompletedAt, Units: tollgate.Units{GPUMillis: j.PredictMillis,
			OutputAudioMillis: j.OutputAudioMillis}}
		switch {
		case j.StartedAt.IsZero() || (j.Status == tollgate.JobFailed && j.Error == OwnerDisabledMessage):
			out.Result, out.Units = tollgate.ResultRejected, tollgate.Units{}
		case j.Status == tollgate.JobSucceeded:
			out.Result, out.Status = tollgate.ResultOK, http.StatusOK
		case j.Status == tollgate.JobCanceled:
			out.Result = tollgate.ResultCancelled
		default:
			out.Result = tollgate.ResultUpstreamError
		}
		release(context.WithoutCancel(ctx), out)
	}
	s.hub.publish(j.ID, event{done: j})
}

// ending records in the metrics that this process ended j, then settles
// it.
func (s *Service) ending(ctx context.Context, j *tollgate.Job) {
	s.metrics.finished.WithLabelValues(j.Model, string(j.Status)).Inc()
	s.notify(j, "completed")
	s.ended(ctx, j)
}

// settleRemote settles the jobs submitted here that ended elsewhere (run
// by another replica): the usage record is settled by the process that
// opened it.
func (s *Service) settleRemote(ctx context.Context) {
	s.mu.Lock()
	ids := make([]string, 0, min(len(s.releases), 500))
	for id := range s.releases {
		if _, mine := s.running[id]; !mine && len(ids) < 500 {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	for _, id := range ids {
		j, err := s.store.JobByID(ctx, id)
		if err != nil {
			if ctx.Err() == nil && tollgate.ErrorCode(err) != tollgate.ENotFound {
				s.log.Warn("jobs: could not look at a job's state", "job", id, "err", err)
			}
			continue
		}
		if j.Status.Terminal() {
			s.ended(ctx, j)
		}
	}
}

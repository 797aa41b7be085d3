package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// schedule starts m's jobs while its upstreams have free slots, whenever a
// job is queued or ends here, and every PollInterval for jobs queued or
// ended elsewhere.
func (s *Service) schedule(ctx context.Context, m *model) {
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		s.dispatch(ctx, m)
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-t.C:
		}
	}
}

// dispatch picks and starts jobs until none is waiting or no slot is free.
// A pick under way when the service stops runs to its end (the job it
// took then ends failed, as any job running at the stop): cut off, its
// transaction would hold the lanes it locked until the store noticed the
// dropped connection.
func (s *Service) dispatch(ctx context.Context, m *model) {
	for ctx.Err() == nil {
		j, err := s.store.Pick(context.WithoutCancel(ctx), tollgate.PickRequest{Model: m.cfg.Name, Upstreams: m.cfg.Upstreams,
			Capacity: m.cfg.Capacity, Now: s.now()})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("jobs: pick failed", "model", m.cfg.Name, "err", err)
			}
			return
		}
		if j == nil {
			return
		}
		if s.opts.OwnerDisabled != nil && s.opts.OwnerDisabled(j.Owner) {
			s.refuseOwner(ctx, j)
			continue
		}
		s.start(ctx, m, j)
	}
}

// OwnerDisabledMessage is the error of a job that never ran because its
// owner's tenant was disabled while it waited; it costs nothing.
const OwnerDisabledMessage = "the job did not run: its tenant is disabled"

// refuseOwner ends a picked job of a disabled owner without running it.
func (s *Service) refuseOwner(ctx context.Context, j *tollgate.Job) {
	done, err := s.store.Finish(context.WithoutCancel(ctx), j.ID, tollgate.JobResult{Status: tollgate.JobFailed,
		Error: OwnerDisabledMessage, CompletedAt: s.now()})
	if err != nil {
		s.log.Error("jobs: could not record a job's end", "job", j.ID, "err", err)
		return
	}
	s.ending(ctx, done)
}

// sweep cancels queued jobs past their Cancel-After, once a minute
// removes results past their retention and settles the jobs that ended
// unsettled (their process died in between), and in cluster mode takes
// over the jobs of replicas whose lease lapsed, every third of a lease.
func (s *Service) sweep(ctx context.Context) {
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	removal := time.NewTicker(max(s.opts.PollInterval, time.Minute))
	defer removal.Stop()
	var takeOver <-chan time.Time // the jobs of replicas whose lease lapsed, in cluster mode
	if s.opts.Cluster {
		tick := time.NewTicker(max(s.opts.PollInterval, cmp.Or(s.cfg.Metering.LeaseTTL, 15*time.Second)/3))
		defer tick.Stop()
		takeOver = tick.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-takeOver:
			s.takeOver(ctx)
			continue
		case <-removal.C:
			if err := s.RemoveExpired(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("jobs: removing expired results failed", "err", err)
			}
			if err := s.adopt(ctx, orphanAge); err != nil && ctx.Err() == nil {
				s.log.Error("jobs: settling ended jobs failed", "err", err)
			}
			continue
		case <-t.C:
		}
		expired, err := s.store.CancelExpired(context.WithoutCancel(ctx), s.now())
		if err != nil && ctx.Err() == nil {
			s.log.Error("jobs: cancel expired jobs failed", "err", err)
		}
		for _, j := range expired {
			s.ending(ctx, j)
		}
	}
}

// start runs a picked job in its own goroutine.
func (s *Service) start(ctx context.Context, m *model, j *tollgate.Job) { s.run(ctx, m, j, false) }

// run runs a job in its own goroutine: a picked one from its submit, or,
// resumed, one a stopped process ran, re-attached by its handle.
func (s *Service) run(ctx context.Context, m *model, j *tollgate.Job, resumed bool) {
	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	run := &tollgate.JobRun{Job: j, Upstream: j.Upstream,
		Report: func(e tollgate.JobEvent) {
			s.hub.publish(j.ID, event{progress: e.Progress, log: e.Log})
			if e.Log != "" {
				s.notify(j, "logs")
			}
		},
		Results: &resultWriter{blobs: s.blobs, key: tollgate.BlobKey{TenantID: j.TenantID, UserID: j.UserID, PredictionID: j.ID}}}
	r := &runningJob{cancel: cancel, run: run, resumed: resumed}
	if resumed {
		r.handle, r.stored = j.Handle, true
	}
	s.mu.Lock()
	s.running[j.ID] = r
	s.mu.Unlock()
	if !resumed {
		s.hub.publish(j.ID, event{progress: -1})
		s.notify(j, "start")
		s.metrics.wait.WithLabelValues(j.Model).Observe(max(0, j.StartedAt.Sub(j.CreatedAt).Seconds()))
	}
	s.runs.Go(func() {
		defer cancel(nil)
		if s.meter != nil && !resumed {
			// The job runs here now: other replicas take it over only
			// once this one's lease lapsed.
			if err := s.meter.HoldHere(runCtx, j.ID); err != nil && tollgate.ErrorCode(err) != tollgate.ENotFound {
				s.log.Warn("jobs: could not record which replica runs a job", "job", j.ID, "err", err)
			}
		}
		stopWatch := s.watchCancel(runCtx, j.ID, cancel)
		defer stopWatch()
		res := s.execute(runCtx, m, r)
		s.mu.Lock()
		delete(s.running, j.ID)
		s.mu.Unlock()
		if res == nil {
			return // detached at a stop: it runs on upstream, still processing
		}
		if r.unsent && s.retry(ctx, m, j, r) {
			return
		}
		res.CompletedAt = s.now()
		done, err := s.store.Finish(context.WithoutCancel(ctx), j.ID, *res)
		if err != nil {
			s.log.Error("jobs: could not record a job's end", "job", j.ID, "err", err)
			return
		}
		s.ending(ctx, done)
		for _, other := range s.models { // a slot freed: every model on the upstream may start a job
			if slices.Contains(other.cfg.Upstreams, j.Upstream) {
				s.wake(other)
			}
		}
	})
}

// watchCancel ends a running job's context when its owner asked to cancel
// it: a request this process did not see (it came between the pick and
// the job's registration, or to another replica) is found in the store,
// at once and then every PollInterval.
func (s *Service) watchCancel(ctx context.Context, id string, cancel context.CancelCauseFunc) (stop func()) {
	ctx, stop = context.WithCancel(ctx)
	check := func() bool {
		j, err := s.store.JobByID(ctx, id)
		if err == nil && j.CancelRequested {
			cancel(errCanceled)
			return true
		}
		return false
	}
	if check() {
		return stop
	}
	go func() {
		t := time.NewTicker(s.opts.PollInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if check() {
					return
				}
			}
		}
	}()
	return stop
}

// execute submits, watches and collects one job, within the model's
// timeout, and says how it ended; nil when it was detached at a stop. A
// resumed job is re-attached by its handle instead, within what is left
// of its timeout.
func (s *Service) execute(ctx context.Context, m *model, r *runningJob) *tollgate.JobResult {
	start, timeout := s.now(), m.cfg.Timeout
	if r.resumed {
		start = r.run.Job.StartedAt
		timeout -= s.now().Sub(start)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, max(timeout, 0), fmt.Errorf("the job ran past the model's timeout of %s", m.cfg.Timeout))
	defer cancel()
	var res *tollgate.JobResult
	var handle string
	var err error
	if ra, ok := m.backend.(tollgate.Reattacher); ok && r.resumed {
		handle = r.handle
		res, err = ra.Reattach(ctx, r.run, handle)
	} else if res = s.dispatched(ctx, r); res != nil {
		return res
	} else {
		handle, err = m.backend.Submit(ctx, r.run)
	}
	if err == nil && handle != "" && !r.resumed {
		s.mu.Lock()
		r.handle = handle
		s.mu.Unlock()
		if herr := s.store.SetHandle(ctx, r.run.Job.ID, handle); herr != nil {
			s.log.Warn("jobs: could not record the upstream's job id", "job", r.run.Job.ID, "err", herr)
		} else {
			s.mu.Lock()
			r.stored = true
			s.mu.Unlock()
		}
	}
	if err == nil && !r.resumed {
		res, err = m.backend.Watch(ctx, r.run, handle)
	}
	if err == nil && res != nil {
		return res
	}
	used := s.now().Sub(start).Milliseconds()
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, tollgate.ErrDetached):
		return nil
	case errors.Is(cause, errCanceled):
		return &tollgate.JobResult{Status: tollgate.JobCanceled, PredictMillis: used}
	case errors.Is(cause, errStopping):
		return &tollgate.JobResult{Status: tollgate.JobFailed, Error: "the gateway stopped while the job ran", PredictMillis: used}
	case ctx.Err() != nil:
		return &tollgate.JobResult{Status: tollgate.JobFailed, Error: cause.Error(), PredictMillis: used}
	}
	if errors.Is(err, tollgate.ErrRefused) {
		// The upstream was never reached: nothing ran, nothing is
		// charged, and the job may be queued again.
		s.log.Warn("jobs: the upstream could not be reached", "job", r.run.Job.ID, "model", m.cfg.Name, "err", err)
		r.unsent = true
		return &tollgate.JobResult{Status: tollgate.JobFailed, Error: "the upstream could not be reached"}
	}
	var refused *tollgate.Error
	if errors.As(err, &refused) && refused.Code == tollgate.EInputInvalid {
		// The upstream refused the input (ComfyUI's node_errors) before
		// any work: the message names the input, for the caller to act
		// on, and no GPU time is charged.
		return &tollgate.JobResult{Status: tollgate.JobFailed, Error: refused.Message}
	}
	var ce *configError
	if errors.As(err, &ce) {
		s.log.Error("jobs: "+ce.msg, "job", r.run.Job.ID)
		return &tollgate.JobResult{Status: tollgate.JobFailed, Error: ce.msg, PredictMillis: used}
	}
	s.log.Warn("jobs: backend failed", "job", r.run.Job.ID, "model", m.cfg.Name, "err", err)
	return &tollgate.JobResult{Status: tollgate.JobFailed, Error: "the backend failed to run the job", PredictMillis: used}
}

// refPrefix starts a job output's reference to one of its result files.
const refPrefix = "tollgate-result:"

// resultWriter stores one job's files under its owner and prediction,
// giving each a name of its own.
type resultWriter struct {
	blobs tollgate.BlobStore
	key   tollgate.BlobKey
	mu    sync.Mutex
	names map[string]bool
}

// Save stores a file and returns its reference.
func (w *resultWriter) Save(ctx context.Context, name, contentType string, body []byte) (string, error) {
	w.mu.Lock()
	if w.names == nil {
		w.names = map[string]bool{}
	}
	unique := name
	for n := 2; w.names[unique]; n++ {
		unique = fmt.Sprintf("%d-%s", n, name)
	}
	w.names[unique] = true
	w.mu.Unlock()
	if _, err := w.blobs.Put(ctx, w.key, unique, contentType, body); err != nil {
		return "", fmt.Errorf("store a result file: %w", err)
	}
	return refPrefix + unique, nil
}

// RemoveExpired deletes the result files of every job past its model's
// retention, then marks the job so (its prediction says data_removed),
// and the uploaded input files past their 24 hours.
func (s *Service) RemoveExpired(ctx context.Context) error {
	if err := s.removeExpiredUploads(ctx); err != nil {
		return err
	}
	for _, m := range s.models {
		for {
			expired, err := s.store.ExpiredResults(ctx, m.cfg.Name, s.now().Add(-m.cfg.Retention), 100)
			if err != nil {
				return err
			}
			for _, j := range expired {
				if err := s.blobs.Delete(ctx, tollgate.BlobKey{TenantID: j.TenantID, UserID: j.UserID, PredictionID: j.ID}); err != nil {
					return err
				}
				if err := s.store.MarkResultsRemoved(ctx, j.ID); err != nil {
					return err
				}
			}
			if len(expired) < 100 {
				break
			}
		}
	}
	return nil
}

package jobs

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// orphanAge is how old a held usage record without a job must be before
// it is taken for a submit that died between reserving and queueing
// (in cluster mode, or while this process runs): younger ones may belong
// to a submit under way.
const orphanAge = 10 * time.Minute

// recover takes over from a process that stopped. On a single node every
// job left processing lost its runner: one whose backend can follow a job
// by its handle (tollgate.Reattacher) is re-attached and runs on in bg;
// one picked but never sent to its upstream (no DispatchedAt: nothing
// ran) is queued again at its place; any other is failed and settled at
// what it is known to have used, which is nothing, since its run time
// died with the process (it is not retried: it may have run upstream).
// Then the held usage records of ended jobs are settled.
func (s *Service) recover(ctx, bg context.Context) error {
	if !s.opts.Cluster {
		orphans, err := s.store.Running(ctx)
		if err != nil {
			return fmt.Errorf("find jobs left running: %w", err)
		}
		reattached, failed, requeued := 0, 0, 0
		for _, j := range orphans {
			if j.DispatchedAt.IsZero() && s.models[j.Model] != nil {
				// Picked, never sent to its upstream: nothing ran.
				if s.requeue(ctx, s.models[j.Model], j.ID, j.Attempts) {
					requeued++
					continue
				}
			}
			if m := s.models[j.Model]; m != nil && j.Handle != "" && !s.opts.SubmitOnly {
				if _, ok := m.backend.(tollgate.Reattacher); ok {
					s.run(bg, m, j, true)
					reattached++
					continue
				}
			}
			done, err := s.store.Finish(ctx, j.ID, tollgate.JobResult{Status: tollgate.JobFailed,
				Error: "the gateway restarted while the job ran", CompletedAt: s.now()})
			if tollgate.ErrorCode(err) == tollgate.EConflict {
				continue
			} else if err != nil {
				return fmt.Errorf("fail a job left running: %w", err)
			}
			failed++
			s.ending(ctx, done)
		}
		if reattached+failed+requeued > 0 {
			s.log.Warn("jobs: took over jobs left running by a stopped process", "reattached", reattached, "failed", failed,
				"queued_again", requeued)
		}
	}
	age := time.Duration(0) // on one node, at start, no submit is under way
	if s.opts.Cluster {
		age = orphanAge
	}
	return s.adopt(ctx, age)
}

// adopt settles the held usage records that no running process will: of
// jobs that ended while their process died before settling them, and of
// submits older than age that never queued their job (charged nothing).
// Records of jobs still queued or running stay open, their reservation
// held.
func (s *Service) adopt(ctx context.Context, age time.Duration) error {
	if s.meter == nil {
		return nil
	}
	recs, err := s.meter.HeldOpen(ctx)
	if err != nil {
		return fmt.Errorf("find open job records: %w", err)
	}
	cutoff := s.now().Add(-age)
	for _, r := range recs {
		j, err := s.store.JobByID(ctx, r.RequestID)
		switch {
		case tollgate.ErrorCode(err) == tollgate.ENotFound && r.Start.Before(cutoff):
			// The plan is not on the record: the default plan's budgets
			// are settled (overrides, per user, are found either way).
			p := &tollgate.Principal{UserID: r.UserID, TenantID: r.TenantID}
			if _, err := s.meter.SettleHeld(context.WithoutCancel(ctx), r.RequestID, p, &tollgate.Outcome{Result: tollgate.ResultRejected, End: s.now()}); err != nil {
				s.log.Error("jobs: could not settle the record of a job never queued", "job", r.RequestID, "err", err)
			}
		case err != nil && tollgate.ErrorCode(err) != tollgate.ENotFound:
			s.log.Error("jobs: could not find the job of an open record", "job", r.RequestID, "err", err)
		case err == nil && j.Status.Terminal():
			s.settle(ctx, j)
		}
	}
	return nil
}

// settle settles an ended job's held usage record, unless another process
// did: the ledger lets one settlement through. A job that never started
// is charged nothing; one that ran, what it used.
func (s *Service) settle(ctx context.Context, j *tollgate.Job) {
	if s.meter == nil {
		return
	}
	p := &tollgate.Principal{UserID: j.UserID, TenantID: j.TenantID, Plan: j.Plan}
	_, err := s.meter.SettleHeld(context.WithoutCancel(ctx), j.ID, p, outcomeOf(j))
	if err != nil && tollgate.ErrorCode(err) != tollgate.ENotFound {
		s.log.Error("jobs: could not settle a job; it is settled on the next look", "job", j.ID, "err", err)
	}
}

// outcomeOf is the metered outcome of an ended job.
func outcomeOf(j *tollgate.Job) *tollgate.Outcome {
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
	return out
}

// takeOver takes over, in cluster mode, the jobs whose usage records name
// a replica whose lease lapsed (it was killed, or cut off from the store
// for longer than metering.lease_ttl). Of replicas trying, the one that
// moves the record to itself acts: a job the stopped replica picked and
// never sent is queued again; one it was running is re-attached when its
// backend can follow it by its handle, else failed at no charge; an ended
// job is settled; a queued one's record just moves, to be looked at no
// more. A job picked less than a lease ago is left alone: its runner is
// about to move its record to itself.
func (s *Service) takeOver(ctx context.Context) {
	if s.meter == nil {
		return
	}
	recs, err := s.meter.HeldOfStopped(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("jobs: could not look for the jobs of stopped replicas", "err", err)
		}
		return
	}
	grace := cmp.Or(s.cfg.Metering.LeaseTTL, 15*time.Second)
	for _, r := range recs {
		j, err := s.store.JobByID(ctx, r.RequestID)
		if err != nil {
			continue // no such job (adopt settles it once old enough), or the store is away
		}
		m := s.models[j.Model]
		var resume bool
		if j.Status == tollgate.JobProcessing {
			s.mu.Lock()
			_, here := s.running[j.ID]
			s.mu.Unlock()
			_, reattach := m.backendOf().(tollgate.Reattacher)
			resume = reattach && j.Handle != ""
			if here || s.now().Sub(j.StartedAt) < grace || resume && s.opts.SubmitOnly {
				continue
			}
		}
		if ok, err := s.meter.TakeHeld(ctx, r); err != nil || !ok {
			continue
		}
		switch {
		case j.Status.Terminal():
			s.settle(ctx, j)
		case j.Status == tollgate.JobProcessing && j.DispatchedAt.IsZero() && m != nil:
			s.log.Warn("jobs: queued again a job a stopped replica picked and never sent", "job", j.ID)
			s.requeue(ctx, m, j.ID, j.Attempts)
		case resume:
			s.log.Warn("jobs: re-attached a job of a stopped replica", "job", j.ID)
			s.run(ctx, m, j, true)
		case j.Status == tollgate.JobProcessing:
			done, err := s.store.Finish(context.WithoutCancel(ctx), j.ID, tollgate.JobResult{Status: tollgate.JobFailed,
				Error: "the gateway running the job stopped", CompletedAt: s.now()})
			if err == nil {
				s.ending(ctx, done)
			}
		}
	}
}

// backendOf returns the model's backend; nil for a model no longer
// configured.
func (m *model) backendOf() tollgate.Backend {
	if m == nil {
		return nil
	}
	return m.backend
}

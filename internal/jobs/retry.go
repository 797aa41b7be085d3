package jobs

import (
	"context"
	"slices"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// dispatched records in the store, right before a picked job is sent to
// its upstream, that it is sent, so a process taking over after this one
// died knows whether anything may have run. It returns nil when the job
// may be sent. A job that could not be marked is not sent: it is marked
// unsent, to be queued again (or, when another process took it over, left
// to that one), and the result returned is the one it ends with if the
// store refuses that too.
func (s *Service) dispatched(ctx context.Context, r *runningJob) *tollgate.JobResult {
	j := r.run.Job
	err := s.store.Dispatch(ctx, j.ID, s.now())
	if err == nil {
		r.attempts = j.Attempts + 1
		return nil
	}
	s.log.Warn("jobs: could not record that a job is sent; it is not sent", "job", j.ID, "err", err)
	r.attempts, r.unsent = j.Attempts, true
	return &tollgate.JobResult{Status: tollgate.JobFailed, Error: "the gateway could not record the job's start"}
}

// retry puts back in the queue a job that nothing ran upstream: one never
// sent, always (it never left the gateway), and one its upstream could
// not be reached for, while the model's retries allow. It reports whether
// the job is taken care of (queued again, ended canceled, or moved by
// another process); false leaves it to be finished as failed.
func (s *Service) retry(ctx context.Context, m *model, j *tollgate.Job, r *runningJob) bool {
	sent := r.attempts > j.Attempts
	if sent && r.attempts > m.cfg.Retries {
		return false
	}
	return s.requeue(ctx, m, j.ID, r.attempts)
}

// requeue moves a processing job at attempts back to the queue, its
// reservation still held; a job its owner asked to cancel ends canceled
// at no charge instead.
func (s *Service) requeue(ctx context.Context, m *model, id string, attempts int) bool {
	ctx = context.WithoutCancel(ctx)
	back, err := s.store.Requeue(ctx, id, attempts, s.now())
	switch {
	case tollgate.ErrorCode(err) == tollgate.EConflict || tollgate.ErrorCode(err) == tollgate.ENotFound:
		return true // another process moved it on
	case err != nil:
		s.log.Error("jobs: could not queue a job again", "job", id, "err", err)
		return false
	}
	if back.Status == tollgate.JobCanceled {
		s.ending(ctx, back)
	} else {
		s.log.Info("jobs: queued a job again; nothing ran upstream", "job", id, "model", back.Model, "attempts", back.Attempts)
		s.hub.publish(id, event{progress: -1})
	}
	s.wakeAll(m)
	return true
}

// wakeAll wakes m and every model sharing one of its upstreams: a slot
// freed, or a job waits again.
func (s *Service) wakeAll(m *model) {
	for _, other := range s.models {
		if other == m || slices.ContainsFunc(other.cfg.Upstreams, func(u string) bool { return slices.Contains(m.cfg.Upstreams, u) }) {
			s.wake(other)
		}
	}
}

package jobs

import (
	"cmp"
	"context"
	"sync"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// submitPrepared queues a job of a model whose backend takes a whole
// upstream request as input (a comfyui route's workflow): the backend
// checks and rewrites it for the caller, then it is reserved, queued and
// scheduled as every job is.
func (s *Service) submitPrepared(ctx context.Context, p *tollgate.Principal, m *model, prep tollgate.InputPreparer, sub Submission) (*tollgate.Job, bool, error) {
	sub.ID = cmp.Or(sub.ID, newJobID())
	raw, err := prep.PrepareInput(ctx, p, sub.ID, sub.Input)
	if err != nil {
		return nil, false, err
	}
	var events []string
	if sub.Webhook != "" {
		if events, err = s.checkWebhook(ctx, sub.Webhook, sub.WebhookEvents); err != nil {
			return nil, false, err
		}
	}
	return s.queue(ctx, p, m, sub, raw, events)
}

// OwnJobs returns up to limit of the owner's jobs of model in status,
// newest first; every status when status is empty.
func (s *Service) OwnJobs(ctx context.Context, o tollgate.Owner, model string, status tollgate.JobStatus, limit int) ([]*tollgate.Job, error) {
	if o.UserID == "" || o.TenantID == "" {
		return nil, tollgate.Errorf(tollgate.EUnauthorized, "authentication required")
	}
	return s.store.AllJobs(ctx, tollgate.JobFilter{Model: model, Status: status, TenantID: o.TenantID, UserID: o.UserID, Limit: limit})
}

// Waiting returns up to limit jobs of model, of every user, that have
// not ended, newest first.
func (s *Service) Waiting(ctx context.Context, model string, limit int) ([]*tollgate.Job, error) {
	var out []*tollgate.Job
	for _, st := range []tollgate.JobStatus{tollgate.JobStarting, tollgate.JobProcessing} {
		js, err := s.store.AllJobs(ctx, tollgate.JobFilter{Model: model, Status: st, Limit: limit})
		if err != nil {
			return nil, err
		}
		out = append(out, js...)
	}
	return out, nil
}

// QueuePosition estimates how many waiting jobs start before the
// starting job j (the store's QueuePosition).
func (s *Service) QueuePosition(ctx context.Context, j *tollgate.Job) (int, error) {
	return s.store.QueuePosition(ctx, j)
}

// Ended returns a channel that receives job id as it ended, once it ends
// in this process or is seen ended here, and a function that ends the
// watch. The job may have ended before: look at it after subscribing.
func (s *Service) Ended(id string) (<-chan *tollgate.Job, func()) {
	ch, stop := s.hub.subscribe(id)
	out := make(chan *tollgate.Job, 1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case e := <-ch:
				if e.done != nil {
					out <- e.done
					return
				}
			case <-done:
				return
			}
		}
	}()
	return out, sync.OnceFunc(func() {
		close(done)
		stop()
	})
}

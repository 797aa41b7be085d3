package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Dispatch records that a processing job is being sent to its upstream.
func (s *JobStore) Dispatch(ctx context.Context, id string, at time.Time) error {
	tag, err := s.db.pool.Exec(ctx, `UPDATE jobs SET dispatched_at = $1, attempts = attempts + 1
		WHERE id = $2 AND status = 'processing'`, at.UTC().Truncate(time.Microsecond), id)
	if err != nil {
		return fmt.Errorf("record job dispatch: %w", err)
	}
	return mustAffect(tag, "job %s is not processing", id)
}

// Requeue moves a processing job that nothing ran back to its place in
// the queue, or ends it canceled when its owner asked to cancel it. It
// locks the user, the lane and the job in the order every change does.
func (s *JobStore) Requeue(ctx context.Context, id string, attempts int, at time.Time) (*tollgate.Job, error) {
	var out *tollgate.Job
	err := s.db.withTx(ctx, func(tx pgx.Tx) error {
		j, err := lockJob(ctx, tx, `id = $1`, id)
		if err != nil {
			return err
		}
		if j.Status != tollgate.JobProcessing || j.Attempts != attempts {
			return tollgate.Errorf(tollgate.EConflict, "job %s is no longer processing at attempt %d", id, attempts)
		}
		upstream := j.Upstream
		j.Upstream, j.Handle, j.StartedAt, j.DispatchedAt = "", "", time.Time{}, time.Time{}
		queued := 0
		if j.CancelRequested {
			j.Status, j.CompletedAt = tollgate.JobCanceled, at.UTC().Truncate(time.Microsecond)
		} else {
			j.Status, queued = tollgate.JobStarting, 1
		}
		b := &pgx.Batch{}
		b.Queue(`UPDATE jobs SET status = $1, upstream = '', handle = '', started_at = NULL, dispatched_at = NULL,
			completed_at = $2 WHERE seq = $3`, string(j.Status), toTime(j.CompletedAt), j.Seq)
		if queued == 1 {
			b.Queue(`UPDATE job_lanes SET queued = queued + 1,
				head_seq = CASE WHEN queued = 0 OR $4 < head_seq THEN $4 ELSE head_seq END
				WHERE model = $1 AND tenant_id = $2 AND user_id = $3`, j.Model, j.TenantID, j.UserID, j.Seq)
		}
		b.Queue(`UPDATE job_users SET running = running - 1, queued = queued + $1 WHERE tenant_id = $2 AND user_id = $3`,
			queued, j.TenantID, j.UserID)
		b.Queue(`UPDATE job_lanes SET user_running = user_running - 1 WHERE tenant_id = $1 AND user_id = $2`, j.TenantID, j.UserID)
		b.Queue(`UPDATE job_upstreams SET running = running - 1 WHERE url = $1`, upstream)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("requeue job: %w", err)
		}
		out = j
		return nil
	})
	return out, err
}

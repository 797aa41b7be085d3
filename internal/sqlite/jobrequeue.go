package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Dispatch records that a processing job is being sent to its upstream.
func (s *JobStore) Dispatch(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.write.ExecContext(ctx, `UPDATE jobs SET dispatched_at = ?, attempts = attempts + 1
		WHERE id = ? AND status = 'processing'`, toTime(at.UTC().Truncate(time.Microsecond)), id)
	if err != nil {
		return fmt.Errorf("record job dispatch: %w", err)
	}
	return mustAffect(res, "job %s is not processing", id)
}

// Requeue moves a processing job that nothing ran back to its place in
// the queue, or ends it canceled when its owner asked to cancel it.
func (s *JobStore) Requeue(ctx context.Context, id string, attempts int, at time.Time) (*tollgate.Job, error) {
	var out *tollgate.Job
	err := s.db.withTx(ctx, func(tx *sql.Tx) error {
		j, err := scanJob(tx.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return tollgate.Errorf(tollgate.ENotFound, "no job %s", id)
		} else if err != nil {
			return fmt.Errorf("requeue job: %w", err)
		}
		if j.Status != tollgate.JobProcessing || j.Attempts != attempts {
			return tollgate.Errorf(tollgate.EConflict, "job %s is no longer processing at attempt %d", id, attempts)
		}
		upstream := j.Upstream
		j.Upstream, j.Handle, j.StartedAt, j.DispatchedAt = "", "", time.Time{}, time.Time{}
		if j.CancelRequested {
			j.Status, j.CompletedAt = tollgate.JobCanceled, at.UTC().Truncate(time.Microsecond)
		} else {
			j.Status = tollgate.JobStarting
		}
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET status = ?, upstream = '', handle = '', started_at = NULL,
			dispatched_at = NULL, completed_at = ? WHERE seq = ?`, string(j.Status), toTime(j.CompletedAt), j.Seq); err != nil {
			return fmt.Errorf("requeue job: %w", err)
		}
		queued := 0
		if j.Status == tollgate.JobStarting {
			queued = 1
		}
		// The user's counts first, then the copies every lane of theirs
		// keeps for the pick's order, then the job's own lane (taking the
		// counts as they are now when it is new).
		if _, err := tx.ExecContext(ctx, `UPDATE job_users SET running = running - 1, queued = queued + ?
			WHERE tenant_id = ? AND user_id = ?`, queued, j.TenantID, j.UserID); err != nil {
			return fmt.Errorf("requeue job: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE job_lanes SET user_running = user_running - 1 WHERE tenant_id = ? AND user_id = ?`,
			j.TenantID, j.UserID); err != nil {
			return fmt.Errorf("requeue job: %w", err)
		}
		if queued == 1 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO job_lanes (model, tenant_id, user_id, priority, max_running, head_seq, queued,
					user_running, user_last_started)
				SELECT ?1, ?2, ?3, ?4, ?5, ?6, 1, u.running, u.last_started_at FROM job_users u WHERE u.tenant_id = ?2 AND u.user_id = ?3
				ON CONFLICT (model, tenant_id, user_id) DO UPDATE SET queued = queued + 1,
					head_seq = CASE WHEN queued = 0 OR excluded.head_seq < head_seq THEN excluded.head_seq ELSE head_seq END`,
				j.Model, j.TenantID, j.UserID, j.Priority, j.MaxRunning, j.Seq); err != nil {
				return fmt.Errorf("requeue job: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE job_upstreams SET running = running - 1 WHERE url = ?`, upstream); err != nil {
			return fmt.Errorf("free upstream slot: %w", err)
		}
		out = j
		return nil
	})
	return out, err
}

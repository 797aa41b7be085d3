package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// JobStore is the durable job queue (migration 00060), shared by every
// replica. Changes lock rows in one order, a user's row, then the lane,
// then the job, then the upstream, so they never deadlock; Pick waits on
// no lock at all (SKIP LOCKED), so a replica never stalls another.
type JobStore struct{ db *DB }

var _ tollgate.JobStore = (*JobStore)(nil)

// Jobs returns the job store.
func (db *DB) Jobs() *JobStore { return &JobStore{db: db} }

const jobColumns = `seq, id, model, tenant_id, user_id, plan, priority, max_running, input,
	COALESCE(idempotency_key, ''), body_hash, status, output, error, logs, upstream, handle,
	cancel_at, cancel_requested, created_at, started_at, completed_at, predict_ms, output_audio_ms, results_removed, webhook, webhook_events,
	attempts, dispatched_at`

func scanJob(row pgx.Row) (*tollgate.Job, error) {
	var j tollgate.Job
	var input string
	var output *string
	var cancelAt, created, started, completed, dispatched *time.Time
	var status, webhookEvents string
	if err := row.Scan(&j.Seq, &j.ID, &j.Model, &j.TenantID, &j.UserID, &j.Plan, &j.Priority, &j.MaxRunning, &input,
		&j.IdempotencyKey, &j.BodyHash, &status, &output, &j.Error, &j.Logs, &j.Upstream, &j.Handle,
		&cancelAt, &j.CancelRequested, &created, &started, &completed, &j.PredictMillis, &j.OutputAudioMillis, &j.ResultsRemoved, &j.Webhook, &webhookEvents,
		&j.Attempts, &dispatched); err != nil {
		return nil, err
	}
	j.Input, j.Status = []byte(input), tollgate.JobStatus(status)
	j.WebhookEvents = strings.Fields(webhookEvents)
	if output != nil {
		j.Output = []byte(*output)
	}
	j.CancelAt, j.CreatedAt, j.StartedAt, j.CompletedAt = fromTime(cancelAt), fromTime(created), fromTime(started), fromTime(completed)
	j.DispatchedAt = fromTime(dispatched)
	return &j, nil
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullJSON(b []byte) *string {
	if len(b) == 0 {
		return nil
	}
	s := string(b)
	return &s
}

// lockUser creates the user's counter row when missing, locks it, and
// returns the user's queued and running jobs and last start.
func lockUser(ctx context.Context, tx pgx.Tx, tenant, user string) (u userRow, err error) {
	if _, err := tx.Exec(ctx, `INSERT INTO job_users (tenant_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, tenant, user); err != nil {
		return u, fmt.Errorf("lock job user: %w", err)
	}
	if err := tx.QueryRow(ctx, `SELECT queued, running, last_started_at FROM job_users WHERE tenant_id = $1 AND user_id = $2 FOR UPDATE`,
		tenant, user).Scan(&u.queued, &u.running, &u.lastStarted); err != nil {
		return u, fmt.Errorf("lock job user: %w", err)
	}
	return u, nil
}

// userRow is a user's job counters.
type userRow struct {
	queued, running int
	lastStarted     *time.Time
}

// Enqueue stores a new starting job, or finds the one of its idempotency
// key.
func (s *JobStore) Enqueue(ctx context.Context, j *tollgate.Job, limits tollgate.QueueLimits) (*tollgate.Job, bool, error) {
	if err := j.Validate(); err != nil {
		return nil, false, err
	}
	var out *tollgate.Job
	created := false
	err := s.db.withTx(ctx, func(tx pgx.Tx) error {
		u, err := lockUser(ctx, tx, j.TenantID, j.UserID)
		if err != nil {
			return err
		}
		queued := u.queued
		if j.IdempotencyKey != "" {
			prev, err := scanJob(tx.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs
				WHERE tenant_id = $1 AND user_id = $2 AND idempotency_key = $3`, j.TenantID, j.UserID, j.IdempotencyKey))
			switch {
			case err == nil && prev.BodyHash == j.BodyHash:
				out = prev
				return nil
			case err == nil:
				return tollgate.Errorf(tollgate.EConflict, "idempotency key %q was used with another request body", j.IdempotencyKey)
			case !errors.Is(err, pgx.ErrNoRows):
				return fmt.Errorf("find idempotent job: %w", err)
			}
		}
		if limits.MaxQueued > 0 && queued >= limits.MaxQueued {
			return tollgate.Errorf(tollgate.EQueueFull, "you already have %d queued jobs, the most your plan allows", queued)
		}
		j.Status = tollgate.JobStarting
		if j.CreatedAt.IsZero() {
			j.CreatedAt = s.db.stamp()
		}
		j.CreatedAt = j.CreatedAt.UTC().Truncate(time.Microsecond)
		j.CancelAt = j.CancelAt.UTC().Truncate(time.Microsecond)
		err = tx.QueryRow(ctx, `INSERT INTO jobs (id, model, tenant_id, user_id, plan, priority, max_running, input,
			idempotency_key, body_hash, status, cancel_at, created_at, webhook, webhook_events)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING seq`,
			j.ID, j.Model, j.TenantID, j.UserID, j.Plan, j.Priority, j.MaxRunning, string(j.Input),
			nullString(j.IdempotencyKey), j.BodyHash, string(j.Status), toTime(j.CancelAt), toTime(j.CreatedAt),
			j.Webhook, strings.Join(j.WebhookEvents, " ")).Scan(&j.Seq)
		if isUnique(err) {
			return tollgate.Errorf(tollgate.EConflict, "job %s exists", j.ID)
		} else if err != nil {
			return fmt.Errorf("insert job: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO job_lanes AS l (model, tenant_id, user_id, priority, max_running, head_seq, queued,
				user_running, user_last_started)
			VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8)
			ON CONFLICT (model, tenant_id, user_id) DO UPDATE SET queued = l.queued + 1,
				priority = excluded.priority, max_running = excluded.max_running,
				head_seq = CASE WHEN l.queued = 0 THEN excluded.head_seq ELSE l.head_seq END`,
			j.Model, j.TenantID, j.UserID, j.Priority, j.MaxRunning, j.Seq, u.running, u.lastStarted); err != nil {
			return fmt.Errorf("queue job: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE job_users SET queued = queued + 1 WHERE tenant_id = $1 AND user_id = $2`,
			j.TenantID, j.UserID); err != nil {
			return fmt.Errorf("count job: %w", err)
		}
		cp := *j
		out, created = &cp, true
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, created, nil
}

// Pick chooses the next job fairly and marks it processing. The upstream's
// row and the user's lane are locked with SKIP LOCKED, so replicas picking
// at once take different slots and users, and never wait on each other.
// Its writes go in one batch, so a pick costs six round trips.
func (s *JobStore) Pick(ctx context.Context, r tollgate.PickRequest) (*tollgate.Job, error) {
	if len(r.Upstreams) == 0 || r.Capacity < 1 {
		return nil, tollgate.Errorf(tollgate.EInvalid, "pick needs upstreams and a capacity")
	}
	for attempt := 0; ; attempt++ {
		j, noSlot, err := s.pick(ctx, r)
		if err != nil || !noSlot || attempt > 0 {
			return j, err
		}
		// No free slot: maybe an upstream has no row yet. Register the
		// upstreams (a no-op once they exist) and look once more.
		tag, err := s.db.pool.Exec(ctx, `INSERT INTO job_upstreams (url) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`, r.Upstreams)
		if err != nil {
			return nil, fmt.Errorf("register upstreams: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil, nil
		}
	}
}

func (s *JobStore) pick(ctx context.Context, r tollgate.PickRequest) (job *tollgate.Job, noSlot bool, err error) {
	err = s.db.withTx(ctx, func(tx pgx.Tx) error {
		var upstream, sortSetting string
		// The lanes are read in job_lanes_order's order, never sorted: a
		// sort, which the planner may choose when its row counts are stale
		// (a table that grew since its last ANALYZE), reads every waiting
		// lane. The setting goes after the upstream's query in its round
		// trip and is put back in the job's, so it holds for the lanes'
		// query alone (other plans made under it can be far worse).
		b := &pgx.Batch{}
		b.Queue(`SELECT url FROM job_upstreams WHERE url = ANY($1) AND running < $2
			ORDER BY running, url LIMIT 1 FOR UPDATE SKIP LOCKED`, r.Upstreams, r.Capacity).QueryRow(func(row pgx.Row) error {
			return row.Scan(&upstream)
		})
		b.Queue(`SELECT current_setting('enable_sort'), set_config('enable_sort', 'off', true)`).QueryRow(func(row pgx.Row) error {
			var off string
			return row.Scan(&sortSetting, &off)
		})
		err := tx.SendBatch(ctx, b).Close()
		if errors.Is(err, pgx.ErrNoRows) {
			noSlot = true
			return nil
		} else if err != nil {
			return fmt.Errorf("find a free upstream: %w", err)
		}
		var tenant, user string
		var head int64
		// The lane's copies order the users; the user's own row, locked
		// with the lane, has the last word on concurrency. The scan stops at
		// the first lane under its cap that no other pick holds, and marks
		// the index entries of the lanes' old versions it passes as dead,
		// so the next pick skips them.
		err = tx.QueryRow(ctx, `SELECT l.tenant_id, l.user_id, l.head_seq FROM job_lanes l
			JOIN job_users u ON u.tenant_id = l.tenant_id AND u.user_id = l.user_id
			WHERE l.model = $1 AND l.queued > 0 AND (l.max_running = 0 OR u.running < l.max_running)
			ORDER BY l.priority DESC, l.user_running, l.user_last_started NULLS FIRST, l.head_seq
			LIMIT 1 FOR UPDATE OF l, u SKIP LOCKED`, r.Model).Scan(&tenant, &user, &head)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		} else if err != nil {
			return fmt.Errorf("choose a user: %w", err)
		}
		// The locked lane's head is its oldest waiting job: every change of
		// it (a submit to an empty lane, a pick, a cancel) locks the lane.
		var j *tollgate.Job
		b = &pgx.Batch{}
		b.Queue(`SELECT set_config('enable_sort', $1, true)`, sortSetting)
		b.Queue(`SELECT `+jobColumns+` FROM jobs WHERE seq = $1 AND status = 'starting' FOR UPDATE`, head).QueryRow(func(row pgx.Row) error {
			var err error
			j, err = scanJob(row)
			return err
		})
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("choose job %d of %s/%s: %w", head, tenant, user, err)
		}
		if j.Model != r.Model || j.TenantID != tenant || j.UserID != user {
			return fmt.Errorf("lane %s %s/%s heads job %d of another lane", r.Model, tenant, user, head)
		}
		now := r.Now.UTC().Truncate(time.Microsecond)
		if now.IsZero() {
			now = s.db.stamp()
		}
		j.Status, j.Upstream, j.StartedAt = tollgate.JobProcessing, upstream, now
		b = &pgx.Batch{}
		b.Queue(`UPDATE jobs SET status = 'processing', upstream = $1, started_at = $2 WHERE seq = $3`, upstream, now, j.Seq)
		queueDequeue(b, j)
		b.Queue(`UPDATE job_users SET running = running + 1, last_started_at = $1 WHERE tenant_id = $2 AND user_id = $3`,
			now, j.TenantID, j.UserID)
		// Every other holder of the user's lanes holds the user's row,
		// locked here, so this waits on no one.
		b.Queue(`UPDATE job_lanes SET user_running = user_running + 1, user_last_started = $1 WHERE tenant_id = $2 AND user_id = $3`,
			now, j.TenantID, j.UserID)
		b.Queue(`UPDATE job_upstreams SET running = running + 1 WHERE url = $1`, upstream)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("start job: %w", err)
		}
		job = j
		return nil
	})
	return job, noSlot, err
}

// queueDequeue adds to b the writes that take a job that left the
// starting state out of its lane and its user's queued count.
func queueDequeue(b *pgx.Batch, j *tollgate.Job) {
	b.Queue(`UPDATE job_lanes SET queued = queued - 1,
		head_seq = COALESCE((SELECT seq FROM jobs WHERE model = $1 AND tenant_id = $2 AND user_id = $3
			AND status = 'starting' ORDER BY seq LIMIT 1), 0)
		WHERE model = $1 AND tenant_id = $2 AND user_id = $3`, j.Model, j.TenantID, j.UserID)
	b.Queue(`UPDATE job_users SET queued = queued - 1 WHERE tenant_id = $1 AND user_id = $2`, j.TenantID, j.UserID)
}

// dequeue takes a job that left the starting state out of its lane and
// its user's queued count; the caller holds the user's and lane's locks.
func dequeue(ctx context.Context, tx pgx.Tx, j *tollgate.Job) error {
	b := &pgx.Batch{}
	queueDequeue(b, j)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("dequeue job: %w", err)
	}
	return nil
}

// SetHandle records the upstream's id of a processing job.
func (s *JobStore) SetHandle(ctx context.Context, id, handle string) error {
	tag, err := s.db.pool.Exec(ctx, `UPDATE jobs SET handle = $1 WHERE id = $2 AND status = 'processing'`, handle, id)
	if err != nil {
		return fmt.Errorf("set job handle: %w", err)
	}
	return mustAffect(tag, "job %s is not processing", id)
}

// lockJob finds a job by where, locks its user, lane and row in that
// order, and returns it as locked.
func lockJob(ctx context.Context, tx pgx.Tx, where string, args ...any) (*tollgate.Job, error) {
	var model, tenant, user string
	err := tx.QueryRow(ctx, `SELECT model, tenant_id, user_id FROM jobs WHERE `+where, args...).Scan(&model, &tenant, &user)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tollgate.Errorf(tollgate.ENotFound, "no such prediction")
	} else if err != nil {
		return nil, fmt.Errorf("find job: %w", err)
	}
	if _, err := lockUser(ctx, tx, tenant, user); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM job_lanes WHERE model = $1 AND tenant_id = $2 AND user_id = $3 FOR UPDATE`,
		model, tenant, user); err != nil {
		return nil, fmt.Errorf("lock job lane: %w", err)
	}
	j, err := scanJob(tx.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE `+where+` FOR UPDATE`, args...))
	if err != nil {
		return nil, fmt.Errorf("lock job: %w", err)
	}
	return j, nil
}

// Finish ends a processing job once.
func (s *JobStore) Finish(ctx context.Context, id string, r tollgate.JobResult) (*tollgate.Job, error) {
	if !r.Status.Terminal() {
		return nil, tollgate.Errorf(tollgate.EInvalid, "finish needs an end status, got %q", r.Status)
	}
	var out *tollgate.Job
	err := s.db.withTx(ctx, func(tx pgx.Tx) error {
		j, err := lockJob(ctx, tx, `id = $1`, id)
		if err != nil {
			return err
		}
		switch {
		case j.Status.Terminal():
			return tollgate.Errorf(tollgate.EConflict, "job %s already ended %s", id, j.Status)
		case j.Status != tollgate.JobProcessing:
			return tollgate.Errorf(tollgate.ENotFound, "job %s has not started", id)
		}
		at := r.CompletedAt.UTC().Truncate(time.Microsecond)
		if at.IsZero() {
			at = s.db.stamp()
		}
		j.Status, j.Output, j.Error, j.Logs, j.PredictMillis, j.CompletedAt = r.Status, r.Output, r.Error, r.Logs, r.PredictMillis, at
		j.OutputAudioMillis = r.OutputAudioMillis
		if _, err := tx.Exec(ctx, `UPDATE jobs SET status = $1, output = $2, error = $3, logs = $4, predict_ms = $5, completed_at = $6,
			output_audio_ms = $7 WHERE seq = $8`, string(r.Status), nullJSON(r.Output), r.Error, r.Logs, r.PredictMillis, at,
			r.OutputAudioMillis, j.Seq); err != nil {
			return fmt.Errorf("finish job: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE job_users SET running = running - 1 WHERE tenant_id = $1 AND user_id = $2`,
			j.TenantID, j.UserID); err != nil {
			return fmt.Errorf("finish job: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE job_lanes SET user_running = user_running - 1 WHERE tenant_id = $1 AND user_id = $2`,
			j.TenantID, j.UserID); err != nil {
			return fmt.Errorf("finish job: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE job_upstreams SET running = running - 1 WHERE url = $1`, j.Upstream); err != nil {
			return fmt.Errorf("free upstream slot: %w", err)
		}
		out = j
		return nil
	})
	return out, err
}

// Cancel cancels the owner's job.
func (s *JobStore) Cancel(ctx context.Context, o tollgate.Owner, id string, at time.Time) (*tollgate.Job, error) {
	var out *tollgate.Job
	err := s.db.withTx(ctx, func(tx pgx.Tx) error {
		j, err := lockJob(ctx, tx, `id = $1 AND tenant_id = $2 AND user_id = $3`, id, o.TenantID, o.UserID)
		if err != nil {
			return err
		}
		out, err = cancelLocked(ctx, tx, j, at)
		return err
	})
	return out, err
}

func cancelLocked(ctx context.Context, tx pgx.Tx, j *tollgate.Job, at time.Time) (*tollgate.Job, error) {
	switch j.Status {
	case tollgate.JobStarting:
		at = at.UTC().Truncate(time.Microsecond)
		j.Status, j.CompletedAt = tollgate.JobCanceled, at
		if _, err := tx.Exec(ctx, `UPDATE jobs SET status = 'canceled', completed_at = $1 WHERE seq = $2`, at, j.Seq); err != nil {
			return nil, fmt.Errorf("cancel job: %w", err)
		}
		if err := dequeue(ctx, tx, j); err != nil {
			return nil, err
		}
	case tollgate.JobProcessing:
		j.CancelRequested = true
		if _, err := tx.Exec(ctx, `UPDATE jobs SET cancel_requested = true WHERE seq = $1`, j.Seq); err != nil {
			return nil, fmt.Errorf("cancel job: %w", err)
		}
	}
	return j, nil
}

// CancelExpired cancels starting jobs past their CancelAt.
func (s *JobStore) CancelExpired(ctx context.Context, now time.Time) ([]*tollgate.Job, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT seq FROM jobs WHERE status = 'starting' AND cancel_at IS NOT NULL AND cancel_at <= $1
		ORDER BY cancel_at LIMIT 1000`, now.UTC())
	if err != nil {
		return nil, fmt.Errorf("find expired jobs: %w", err)
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("find expired jobs: %w", err)
	}
	var out []*tollgate.Job
	for _, seq := range seqs {
		err := s.db.withTx(ctx, func(tx pgx.Tx) error {
			j, err := lockJob(ctx, tx, `seq = $1`, seq)
			if err != nil || j.Status != tollgate.JobStarting {
				return err // picked or canceled meanwhile
			}
			j, err = cancelLocked(ctx, tx, j, now)
			if err == nil {
				out = append(out, j)
			}
			return err
		})
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// Job returns the owner's job.
func (s *JobStore) Job(ctx context.Context, o tollgate.Owner, id string) (*tollgate.Job, error) {
	return s.one(ctx, `id = $1 AND tenant_id = $2 AND user_id = $3`, id, o.TenantID, o.UserID)
}

// JobByKey returns the owner's job of an idempotency key.
func (s *JobStore) JobByKey(ctx context.Context, o tollgate.Owner, key string) (*tollgate.Job, error) {
	return s.one(ctx, `tenant_id = $1 AND user_id = $2 AND idempotency_key = $3`, o.TenantID, o.UserID, key)
}

// JobByID returns any job.
func (s *JobStore) JobByID(ctx context.Context, id string) (*tollgate.Job, error) {
	return s.one(ctx, `id = $1`, id)
}

func (s *JobStore) one(ctx context.Context, where string, args ...any) (*tollgate.Job, error) {
	j, err := scanJob(s.db.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE `+where, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tollgate.Errorf(tollgate.ENotFound, "no such prediction")
	} else if err != nil {
		return nil, fmt.Errorf("read job: %w", err)
	}
	return j, nil
}

// Jobs returns a page of the owner's jobs, newest first.
func (s *JobStore) Jobs(ctx context.Context, q tollgate.JobQuery) ([]*tollgate.Job, error) {
	if q.Limit < 1 || q.Limit > 1000 || q.Before < 0 || q.After < 0 || (q.Before > 0 && q.After > 0) {
		return nil, tollgate.Errorf(tollgate.EInvalid, "invalid page of predictions")
	}
	query := `SELECT ` + jobColumns + ` FROM jobs WHERE tenant_id = $1 AND user_id = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4`
	args := []any{q.TenantID, q.UserID, q.Before, q.Limit}
	if q.Before == 0 {
		args[2] = int64(1) << 62
	}
	if q.After > 0 {
		query = `SELECT * FROM (SELECT ` + jobColumns + ` FROM jobs WHERE tenant_id = $1 AND user_id = $2 AND seq > $3
			ORDER BY seq LIMIT $4) AS page ORDER BY seq DESC`
		args[2] = q.After
	}
	return s.list(ctx, query, args...)
}

// Running returns every processing job, oldest first.
func (s *JobStore) Running(ctx context.Context) ([]*tollgate.Job, error) {
	return s.list(ctx, `SELECT `+jobColumns+` FROM jobs WHERE status = 'processing' ORDER BY seq`)
}

func (s *JobStore) list(ctx context.Context, query string, args ...any) ([]*tollgate.Job, error) {
	rows, err := s.db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*tollgate.Job, error) { return scanJob(row) })
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return out, nil
}

// ExpiredResults returns ended jobs of model whose results are due for
// removal.
func (s *JobStore) ExpiredResults(ctx context.Context, model string, before time.Time, limit int) ([]*tollgate.Job, error) {
	return s.list(ctx, `SELECT `+jobColumns+` FROM jobs
		WHERE model = $1 AND completed_at IS NOT NULL AND NOT results_removed AND completed_at < $2
		ORDER BY completed_at LIMIT $3`, model, before.UTC(), limit)
}

// MarkResultsRemoved records that a job's results are deleted.
func (s *JobStore) MarkResultsRemoved(ctx context.Context, id string) error {
	tag, err := s.db.pool.Exec(ctx, `UPDATE jobs SET results_removed = true WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("mark results removed: %w", err)
	}
	return mustAffect(tag, "no job %s", id)
}

// Stats returns the jobs waiting per model and running per upstream.
func (s *JobStore) Stats(ctx context.Context) (*tollgate.JobStats, error) {
	st := &tollgate.JobStats{Queued: map[string]int{}, Running: map[string]int{}}
	for _, q := range []struct {
		sql string
		out map[string]int
	}{
		{`SELECT model, SUM(queued)::int FROM job_lanes GROUP BY model`, st.Queued},
		{`SELECT url, running FROM job_upstreams`, st.Running},
	} {
		rows, err := s.db.pool.Query(ctx, q.sql)
		if err != nil {
			return nil, fmt.Errorf("job stats: %w", err)
		}
		for rows.Next() {
			var k string
			var n int
			if err := rows.Scan(&k, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("job stats: %w", err)
			}
			q.out[k] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("job stats: %w", err)
		}
	}
	return st, nil
}

// AllJobs returns a page of every user's jobs, newest first.
func (s *JobStore) AllJobs(ctx context.Context, f tollgate.JobFilter) ([]*tollgate.Job, error) {
	if f.Limit < 1 || f.Limit > 1000 || f.Before < 0 {
		return nil, tollgate.Errorf(tollgate.EInvalid, "invalid page of jobs")
	}
	where, args := []string{"seq < PH"}, []any{int64(1) << 62}
	if f.Before > 0 {
		args[0] = f.Before
	}
	for _, c := range []struct{ col, v string }{{"model", f.Model}, {"status", string(f.Status)}, {"tenant_id", f.TenantID}, {"user_id", f.UserID}} {
		if c.v != "" {
			where = append(where, c.col+" = PH")
			args = append(args, c.v)
		}
	}
	args = append(args, f.Limit)
	query := `SELECT ` + jobColumns + ` FROM jobs WHERE ` + strings.Join(where, " AND ") + ` ORDER BY seq DESC LIMIT PH`
	return s.list(ctx, placeholders(query), args...)
}

// placeholders numbers each PH as $1, $2, ….
func placeholders(q string) string {
	var b strings.Builder
	n := 0
	for {
		i := strings.Index(q, "PH")
		if i < 0 {
			b.WriteString(q)
			return b.String()
		}
		n++
		fmt.Fprintf(&b, "%s$%d", q[:i], n)
		q = q[i+2:]
	}
}

// QueuePosition estimates the waiting jobs that start before j. Users
// take turns in Pick's order: never started first, then the one whose
// last job started longest ago, then the oldest waiting job.
func (s *JobStore) QueuePosition(ctx context.Context, j *tollgate.Job) (int, error) {
	if j.Status != tollgate.JobStarting {
		return 0, nil
	}
	var pos int
	err := s.db.pool.QueryRow(ctx, `WITH mine AS (
			SELECT (SELECT COUNT(*) FROM jobs
				WHERE model = $1 AND tenant_id = $2 AND user_id = $3 AND status = 'starting' AND seq < $4) AS k,
			COALESCE((SELECT last_started_at FROM job_users WHERE tenant_id = $2 AND user_id = $3), '-infinity') AS last,
			COALESCE((SELECT head_seq FROM job_lanes WHERE model = $1 AND tenant_id = $2 AND user_id = $3), $4) AS head)
		SELECT (mine.k + COALESCE(SUM(CASE WHEN l.priority > $5 THEN l.queued
			WHEN l.priority = $5 THEN LEAST(l.queued, mine.k + ((COALESCE(l.user_last_started, '-infinity'), l.head_seq) < (mine.last, mine.head))::int)
			ELSE 0 END), 0))::int
		FROM mine LEFT JOIN job_lanes l ON l.model = $1 AND l.queued > 0 AND NOT (l.tenant_id = $2 AND l.user_id = $3)
		GROUP BY mine.k`, j.Model, j.TenantID, j.UserID, j.Seq, j.Priority).Scan(&pos)
	if err != nil {
		return 0, fmt.Errorf("queue position: %w", err)
	}
	return pos, nil
}

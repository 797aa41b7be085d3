package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// JobStore is the durable job queue (migration 00060). Every change runs
// in one write transaction on the single write connection, so picks,
// finishes and cancels are serialised in the process.
type JobStore struct{ db *DB }

var _ tollgate.JobStore = (*JobStore)(nil)

// Jobs returns the job store.
func (db *DB) Jobs() *JobStore { return &JobStore{db: db} }

const jobColumns = `seq, id, model, tenant_id, user_id, plan, priority, max_running, input,
	COALESCE(idempotency_key, ''), body_hash, status, output, error, logs, upstream, handle,
	cancel_at, cancel_requested, created_at, started_at, completed_at, predict_ms, output_audio_ms, results_removed, webhook, webhook_events,
	attempts, dispatched_at`

func scanJob(row scanner) (*tollgate.Job, error) {
	var j tollgate.Job
	var input string
	var output sql.NullString
	var cancelAt, created, started, completed, dispatched sql.NullInt64
	var status, webhookEvents string
	if err := row.Scan(&j.Seq, &j.ID, &j.Model, &j.TenantID, &j.UserID, &j.Plan, &j.Priority, &j.MaxRunning, &input,
		&j.IdempotencyKey, &j.BodyHash, &status, &output, &j.Error, &j.Logs, &j.Upstream, &j.Handle,
		&cancelAt, &j.CancelRequested, &created, &started, &completed, &j.PredictMillis, &j.OutputAudioMillis, &j.ResultsRemoved, &j.Webhook, &webhookEvents,
		&j.Attempts, &dispatched); err != nil {
		return nil, err
	}
	j.Input, j.Status = []byte(input), tollgate.JobStatus(status)
	j.WebhookEvents = strings.Fields(webhookEvents)
	if output.Valid {
		j.Output = []byte(output.String)
	}
	j.CancelAt, j.CreatedAt, j.StartedAt, j.CompletedAt = fromTime(cancelAt), fromTime(created), fromTime(started), fromTime(completed)
	j.DispatchedAt = fromTime(dispatched)
	return &j, nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullJSON(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// Enqueue stores a new starting job, or finds the one of its idempotency
// key.
func (s *JobStore) Enqueue(ctx context.Context, j *tollgate.Job, limits tollgate.QueueLimits) (*tollgate.Job, bool, error) {
	if err := j.Validate(); err != nil {
		return nil, false, err
	}
	var out *tollgate.Job
	created := false
	err := s.db.withPreparedTx(ctx, func(tx *sql.Tx) error {
		if j.IdempotencyKey != "" {
			prev, err := scanJob(s.db.txQueryRow(ctx, tx, `SELECT `+jobColumns+` FROM jobs
				WHERE tenant_id = ? AND user_id = ? AND idempotency_key = ?`, j.TenantID, j.UserID, j.IdempotencyKey))
			switch {
			case err == nil && prev.BodyHash == j.BodyHash:
				out = prev
				return nil
			case err == nil:
				return tollgate.Errorf(tollgate.EConflict, "idempotency key %q was used with another request body", j.IdempotencyKey)
			case !errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("find idempotent job: %w", err)
			}
		}
		var queued, running int
		var lastStarted sql.NullInt64
		err := s.db.txQueryRow(ctx, tx, `SELECT queued, running, last_started_at FROM job_users WHERE tenant_id = ? AND user_id = ?`,
			j.TenantID, j.UserID).Scan(&queued, &running, &lastStarted)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("count queued jobs: %w", err)
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
		err = s.db.txQueryRow(ctx, tx, `INSERT INTO jobs (id, model, tenant_id, user_id, plan, priority, max_running, input,
			idempotency_key, body_hash, status, cancel_at, created_at, webhook, webhook_events)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
			j.ID, j.Model, j.TenantID, j.UserID, j.Plan, j.Priority, j.MaxRunning, string(j.Input),
			nullString(j.IdempotencyKey), j.BodyHash, string(j.Status), toTime(j.CancelAt), toTime(j.CreatedAt),
			j.Webhook, strings.Join(j.WebhookEvents, " ")).Scan(&j.Seq)
		if isUnique(err) {
			return tollgate.Errorf(tollgate.EConflict, "job %s exists", j.ID)
		} else if err != nil {
			return fmt.Errorf("insert job: %w", err)
		}
		if _, err := s.db.txExec(ctx, tx, `INSERT INTO job_lanes (model, tenant_id, user_id, priority, max_running, head_seq, queued,
				user_running, user_last_started)
			VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)
			ON CONFLICT (model, tenant_id, user_id) DO UPDATE SET queued = queued + 1,
				priority = excluded.priority, max_running = excluded.max_running,
				head_seq = CASE WHEN queued = 0 THEN excluded.head_seq ELSE head_seq END`,
			j.Model, j.TenantID, j.UserID, j.Priority, j.MaxRunning, j.Seq, running, lastStarted); err != nil {
			return fmt.Errorf("queue job: %w", err)
		}
		if _, err := s.db.txExec(ctx, tx, `INSERT INTO job_users (tenant_id, user_id, queued) VALUES (?, ?, 1)
			ON CONFLICT (tenant_id, user_id) DO UPDATE SET queued = queued + 1`, j.TenantID, j.UserID); err != nil {
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

// Pick chooses the next job fairly and marks it processing.
func (s *JobStore) Pick(ctx context.Context, r tollgate.PickRequest) (*tollgate.Job, error) {
	if len(r.Upstreams) == 0 || r.Capacity < 1 {
		return nil, tollgate.Errorf(tollgate.EInvalid, "pick needs upstreams and a capacity")
	}
	var out *tollgate.Job
	err := s.db.withPreparedTx(ctx, func(tx *sql.Tx) error {
		var upstream string
		err := s.db.txQueryRow(ctx, tx, `SELECT c.value FROM json_each(?) AS c
			LEFT JOIN job_upstreams u ON u.url = c.value WHERE COALESCE(u.running, 0) < ?
			ORDER BY COALESCE(u.running, 0), c.value LIMIT 1`, jsonList(r.Upstreams), r.Capacity).Scan(&upstream)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		} else if err != nil {
			return fmt.Errorf("find a free upstream: %w", err)
		}
		var tenant, user string
		// The lanes' copies of their user's counters, kept in this
		// transaction's order of writes, follow job_lanes_order: the first
		// lane under its cap is the one, read in a few rows (NULL, never
		// started, sorts first).
		err = s.db.txQueryRow(ctx, tx, `SELECT tenant_id, user_id FROM job_lanes INDEXED BY job_lanes_order
			WHERE model = ? AND queued > 0 AND (max_running = 0 OR user_running < max_running)
			ORDER BY priority DESC, user_running, user_last_started, head_seq
			LIMIT 1`, r.Model).Scan(&tenant, &user)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		} else if err != nil {
			return fmt.Errorf("choose a user: %w", err)
		}
		j, err := scanJob(s.db.txQueryRow(ctx, tx, `SELECT `+jobColumns+` FROM jobs INDEXED BY jobs_waiting
			WHERE model = ? AND tenant_id = ? AND user_id = ? AND status = 'starting' ORDER BY seq LIMIT 1`, r.Model, tenant, user))
		if err != nil {
			return fmt.Errorf("choose a job: %w", err)
		}
		now := r.Now.UTC().Truncate(time.Microsecond)
		if now.IsZero() {
			now = s.db.stamp()
		}
		j.Status, j.Upstream, j.StartedAt = tollgate.JobProcessing, upstream, now
		if _, err := s.db.txExec(ctx, tx, `UPDATE jobs SET status = 'processing', upstream = ?, started_at = ? WHERE seq = ?`,
			upstream, toTime(now), j.Seq); err != nil {
			return fmt.Errorf("start job: %w", err)
		}
		if err := s.dequeue(ctx, tx, j); err != nil {
			return err
		}
		if _, err := s.db.txExec(ctx, tx, `UPDATE job_users SET running = running + 1, last_started_at = ?
			WHERE tenant_id = ? AND user_id = ?`, toTime(now), j.TenantID, j.UserID); err != nil {
			return fmt.Errorf("count running job: %w", err)
		}
		if _, err := s.db.txExec(ctx, tx, `UPDATE job_lanes SET user_running = user_running + 1, user_last_started = ?
			WHERE tenant_id = ? AND user_id = ?`, toTime(now), j.TenantID, j.UserID); err != nil {
			return fmt.Errorf("count running job: %w", err)
		}
		if _, err := s.db.txExec(ctx, tx, `INSERT INTO job_upstreams (url, running) VALUES (?, 1)
			ON CONFLICT (url) DO UPDATE SET running = running + 1`, upstream); err != nil {
			return fmt.Errorf("take upstream slot: %w", err)
		}
		out = j
		return nil
	})
	return out, err
}

// dequeue takes a job that left the starting state out of its lane and
// its user's queued count.
func (s *JobStore) dequeue(ctx context.Context, tx *sql.Tx, j *tollgate.Job) error {
	if _, err := s.db.txExec(ctx, tx, `UPDATE job_lanes SET queued = queued - 1,
		head_seq = COALESCE((SELECT seq FROM jobs INDEXED BY jobs_waiting WHERE model = ?1 AND tenant_id = ?2 AND user_id = ?3
			AND status = 'starting' ORDER BY seq LIMIT 1), 0)
		WHERE model = ?1 AND tenant_id = ?2 AND user_id = ?3`, j.Model, j.TenantID, j.UserID); err != nil {
		return fmt.Errorf("dequeue job: %w", err)
	}
	if _, err := s.db.txExec(ctx, tx, `UPDATE job_users SET queued = queued - 1 WHERE tenant_id = ? AND user_id = ?`,
		j.TenantID, j.UserID); err != nil {
		return fmt.Errorf("dequeue job: %w", err)
	}
	return nil
}

func jsonList(ss []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(quoteJSON(s))
	}
	b.WriteByte(']')
	return b.String()
}

func quoteJSON(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// SetHandle records the upstream's id of a processing job.
func (s *JobStore) SetHandle(ctx context.Context, id, handle string) error {
	res, err := s.db.write.ExecContext(ctx, `UPDATE jobs SET handle = ? WHERE id = ? AND status = 'processing'`, handle, id)
	if err != nil {
		return fmt.Errorf("set job handle: %w", err)
	}
	return mustAffect(res, "job %s is not processing", id)
}

// Finish ends a processing job once.
func (s *JobStore) Finish(ctx context.Context, id string, r tollgate.JobResult) (*tollgate.Job, error) {
	if !r.Status.Terminal() {
		return nil, tollgate.Errorf(tollgate.EInvalid, "finish needs an end status, got %q", r.Status)
	}
	var out *tollgate.Job
	err := s.db.withPreparedTx(ctx, func(tx *sql.Tx) error {
		j, err := scanJob(s.db.txQueryRow(ctx, tx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return tollgate.Errorf(tollgate.ENotFound, "no job %s", id)
		} else if err != nil {
			return fmt.Errorf("finish job: %w", err)
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
		if _, err := s.db.txExec(ctx, tx, `UPDATE jobs SET status = ?, output = ?, error = ?, logs = ?, predict_ms = ?, completed_at = ?,
			output_audio_ms = ? WHERE seq = ?`, string(r.Status), nullJSON(r.Output), r.Error, r.Logs, r.PredictMillis, toTime(at),
			r.OutputAudioMillis, j.Seq); err != nil {
			return fmt.Errorf("finish job: %w", err)
		}
		if _, err := s.db.txExec(ctx, tx, `UPDATE job_users SET running = running - 1 WHERE tenant_id = ? AND user_id = ?`,
			j.TenantID, j.UserID); err != nil {
			return fmt.Errorf("finish job: %w", err)
		}
		if _, err := s.db.txExec(ctx, tx, `UPDATE job_lanes SET user_running = user_running - 1 WHERE tenant_id = ? AND user_id = ?`,
			j.TenantID, j.UserID); err != nil {
			return fmt.Errorf("finish job: %w", err)
		}
		if _, err := s.db.txExec(ctx, tx, `UPDATE job_upstreams SET running = running - 1 WHERE url = ?`, j.Upstream); err != nil {
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
	err := s.db.withPreparedTx(ctx, func(tx *sql.Tx) error {
		j, err := s.cancel(ctx, tx, `id = ? AND tenant_id = ? AND user_id = ?`, []any{id, o.TenantID, o.UserID}, at)
		out = j
		return err
	})
	return out, err
}

func (s *JobStore) cancel(ctx context.Context, tx *sql.Tx, where string, args []any, at time.Time) (*tollgate.Job, error) {
	j, err := scanJob(s.db.txQueryRow(ctx, tx, `SELECT `+jobColumns+` FROM jobs WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tollgate.Errorf(tollgate.ENotFound, "no such prediction")
	} else if err != nil {
		return nil, fmt.Errorf("cancel job: %w", err)
	}
	switch j.Status {
	case tollgate.JobStarting:
		at = at.UTC().Truncate(time.Microsecond)
		j.Status, j.CompletedAt = tollgate.JobCanceled, at
		if _, err := s.db.txExec(ctx, tx, `UPDATE jobs SET status = 'canceled', completed_at = ? WHERE seq = ?`, toTime(at), j.Seq); err != nil {
			return nil, fmt.Errorf("cancel job: %w", err)
		}
		if err := s.dequeue(ctx, tx, j); err != nil {
			return nil, err
		}
	case tollgate.JobProcessing:
		j.CancelRequested = true
		if _, err := s.db.txExec(ctx, tx, `UPDATE jobs SET cancel_requested = 1 WHERE seq = ?`, j.Seq); err != nil {
			return nil, fmt.Errorf("cancel job: %w", err)
		}
	}
	return j, nil
}

// CancelExpired cancels starting jobs past their CancelAt.
func (s *JobStore) CancelExpired(ctx context.Context, now time.Time) ([]*tollgate.Job, error) {
	var out []*tollgate.Job
	err := s.db.withPreparedTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT seq FROM jobs INDEXED BY jobs_cancel_at
			WHERE status = 'starting' AND cancel_at IS NOT NULL AND cancel_at <= ? ORDER BY cancel_at LIMIT 1000`, now.UnixMicro())
		if err != nil {
			return fmt.Errorf("find expired jobs: %w", err)
		}
		var seqs []int64
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				rows.Close()
				return fmt.Errorf("find expired jobs: %w", err)
			}
			seqs = append(seqs, seq)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("find expired jobs: %w", err)
		}
		for _, seq := range seqs {
			j, err := s.cancel(ctx, tx, `seq = ?`, []any{seq}, now)
			if err != nil {
				return err
			}
			out = append(out, j)
		}
		return nil
	})
	return out, err
}

// Job returns the owner's job.
func (s *JobStore) Job(ctx context.Context, o tollgate.Owner, id string) (*tollgate.Job, error) {
	return s.one(ctx, `id = ? AND tenant_id = ? AND user_id = ?`, id, o.TenantID, o.UserID)
}

// JobByKey returns the owner's job of an idempotency key.
func (s *JobStore) JobByKey(ctx context.Context, o tollgate.Owner, key string) (*tollgate.Job, error) {
	return s.one(ctx, `tenant_id = ? AND user_id = ? AND idempotency_key = ?`, o.TenantID, o.UserID, key)
}

// JobByID returns any job.
func (s *JobStore) JobByID(ctx context.Context, id string) (*tollgate.Job, error) {
	return s.one(ctx, `id = ?`, id)
}

func (s *JobStore) one(ctx context.Context, where string, args ...any) (*tollgate.Job, error) {
	j, err := scanJob(s.db.readQueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
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
	query := `SELECT ` + jobColumns + ` FROM jobs WHERE tenant_id = ? AND user_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`
	args := []any{q.TenantID, q.UserID, q.Before, q.Limit}
	if q.Before == 0 {
		args[2] = int64(1) << 62
	}
	if q.After > 0 {
		query = `SELECT * FROM (SELECT ` + jobColumns + ` FROM jobs WHERE tenant_id = ? AND user_id = ? AND seq > ?
			ORDER BY seq LIMIT ?) ORDER BY seq DESC`
		args[2] = q.After
	}
	return s.list(ctx, query, args...)
}

// Running returns every processing job, oldest first.
func (s *JobStore) Running(ctx context.Context) ([]*tollgate.Job, error) {
	return s.list(ctx, `SELECT `+jobColumns+` FROM jobs INDEXED BY jobs_running WHERE status = 'processing' ORDER BY seq`)
}

func (s *JobStore) list(ctx context.Context, query string, args ...any) ([]*tollgate.Job, error) {
	rows, err := s.db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer rows.Close()
	var out []*tollgate.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return out, nil
}

// ExpiredResults returns ended jobs of model whose results are due for
// removal.
func (s *JobStore) ExpiredResults(ctx context.Context, model string, before time.Time, limit int) ([]*tollgate.Job, error) {
	return s.list(ctx, `SELECT `+jobColumns+` FROM jobs INDEXED BY jobs_results
		WHERE model = ? AND completed_at IS NOT NULL AND NOT results_removed AND completed_at < ?
		ORDER BY completed_at LIMIT ?`, model, before.UnixMicro(), limit)
}

// MarkResultsRemoved records that a job's results are deleted.
func (s *JobStore) MarkResultsRemoved(ctx context.Context, id string) error {
	res, err := s.db.write.ExecContext(ctx, `UPDATE jobs SET results_removed = 1 WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("mark results removed: %w", err)
	}
	return mustAffect(res, "no job %s", id)
}

// Stats returns the jobs waiting per model and running per upstream.
func (s *JobStore) Stats(ctx context.Context) (*tollgate.JobStats, error) {
	st := &tollgate.JobStats{Queued: map[string]int{}, Running: map[string]int{}}
	for _, q := range []struct {
		sql string
		out map[string]int
	}{
		{`SELECT model, SUM(queued) FROM job_lanes GROUP BY model`, st.Queued},
		{`SELECT url, running FROM job_upstreams`, st.Running},
	} {
		rows, err := s.db.read.QueryContext(ctx, q.sql)
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

// placeholders turns each PH into a ? parameter.
func placeholders(q string) string { return strings.ReplaceAll(q, "PH", "?") }

// QueuePosition estimates the waiting jobs that start before j. Users
// take turns in Pick's order: never started first, then the one whose
// last job started longest ago, then the oldest waiting job. It reads
// the other waiting lanes of j's priority and above from job_lanes_order
// alone (a lane's head job is its own, so head_seq tells j's lane apart).
func (s *JobStore) QueuePosition(ctx context.Context, j *tollgate.Job) (int, error) {
	if j.Status != tollgate.JobStarting {
		return 0, nil
	}
	var pos int
	err := s.db.readQueryRow(ctx, `WITH mine AS (
			SELECT (SELECT COUNT(*) FROM jobs INDEXED BY jobs_waiting
				WHERE model = ?1 AND tenant_id = ?2 AND user_id = ?3 AND status = 'starting' AND seq < ?4) AS k,
			COALESCE((SELECT last_started_at FROM job_users WHERE tenant_id = ?2 AND user_id = ?3), -1) AS last,
			COALESCE((SELECT head_seq FROM job_lanes WHERE model = ?1 AND tenant_id = ?2 AND user_id = ?3), ?4) AS head)
		SELECT mine.k + COALESCE((SELECT SUM(CASE WHEN l.priority > ?5 THEN l.queued
				ELSE MIN(l.queued, mine.k + ((COALESCE(l.user_last_started, -1), l.head_seq) < (mine.last, mine.head))) END)
			FROM job_lanes l INDEXED BY job_lanes_order
			WHERE l.model = ?1 AND l.queued > 0 AND l.priority >= ?5 AND l.head_seq <> mine.head), 0)
		FROM mine`, j.Model, j.TenantID, j.UserID, j.Seq, j.Priority).Scan(&pos)
	if err != nil {
		return 0, fmt.Errorf("queue position: %w", err)
	}
	return pos, nil
}

-- The job queue of the predictions API. jobs holds every job; job_lanes
-- one row per job model and user with the user's waiting count and oldest
-- waiting job, so picking the next job reads one row per waiting user,
-- never the whole queue; job_users each user's waiting and running counts
-- and when their last job started (fairness, max_queued, concurrency);
-- job_upstreams the jobs running on each upstream (capacity). Times are
-- INTEGER microseconds since the Unix epoch (UTC).

-- +goose Up
CREATE TABLE jobs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    model            TEXT NOT NULL,
    tenant_id        TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    plan             TEXT NOT NULL DEFAULT '',
    priority         INTEGER NOT NULL DEFAULT 0,
    max_running      INTEGER NOT NULL DEFAULT 0,
    input            TEXT NOT NULL,
    idempotency_key  TEXT,
    body_hash        TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL,
    output           TEXT,
    error            TEXT NOT NULL DEFAULT '',
    logs             TEXT NOT NULL DEFAULT '',
    upstream         TEXT NOT NULL DEFAULT '',
    handle           TEXT NOT NULL DEFAULT '',
    cancel_at        INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    completed_at     INTEGER,
    predict_ms       INTEGER NOT NULL DEFAULT 0,
    results_removed  INTEGER NOT NULL DEFAULT 0,
    webhook          TEXT NOT NULL DEFAULT '',
    webhook_events   TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant_id, user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_waiting ON jobs (model, tenant_id, user_id, seq) WHERE status = 'starting';
CREATE INDEX jobs_owner ON jobs (tenant_id, user_id, seq);
CREATE INDEX jobs_cancel_at ON jobs (cancel_at) WHERE status = 'starting' AND cancel_at IS NOT NULL;
CREATE INDEX jobs_running ON jobs (seq) WHERE status = 'processing';
CREATE INDEX jobs_results ON jobs (model, completed_at) WHERE completed_at IS NOT NULL AND NOT results_removed;

CREATE TABLE job_lanes (
    model       TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    max_running INTEGER NOT NULL,
    head_seq    INTEGER NOT NULL,
    queued      INTEGER NOT NULL,
    PRIMARY KEY (model, tenant_id, user_id)
);
CREATE INDEX job_lanes_waiting ON job_lanes (model, priority DESC, head_seq) WHERE queued > 0;

CREATE TABLE job_users (
    tenant_id       TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    queued          INTEGER NOT NULL DEFAULT 0,
    running         INTEGER NOT NULL DEFAULT 0,
    last_started_at INTEGER,
    PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE job_upstreams (
    url     TEXT PRIMARY KEY,
    running INTEGER NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE job_upstreams;
DROP TABLE job_users;
DROP TABLE job_lanes;
DROP TABLE jobs;

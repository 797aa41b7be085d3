-- The job queue of the predictions API. jobs holds every job; job_lanes
-- one row per job model and user with the user's waiting count and oldest
-- waiting job, so picking the next job reads one row per waiting user,
-- never the whole queue; job_users each user's waiting and running counts
-- and when their last job started (fairness, max_queued, concurrency);
-- job_upstreams the jobs running on each upstream (capacity, global across
-- replicas: a pick locks the upstream's row). The counter tables are
-- updated on every submit and pick; they have no index beyond their keys
-- and room on each page (fillfactor), so the updates are HOT and leave no
-- dead index entries that a pick would wade through.

-- +goose Up
CREATE TABLE jobs (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               text NOT NULL UNIQUE,
    model            text NOT NULL,
    tenant_id        text NOT NULL,
    user_id          text NOT NULL,
    plan             text NOT NULL DEFAULT '',
    priority         integer NOT NULL DEFAULT 0,
    max_running      integer NOT NULL DEFAULT 0,
    input            text NOT NULL,
    idempotency_key  text,
    body_hash        text NOT NULL DEFAULT '',
    status           text NOT NULL,
    output           text,
    error            text NOT NULL DEFAULT '',
    logs             text NOT NULL DEFAULT '',
    upstream         text NOT NULL DEFAULT '',
    handle           text NOT NULL DEFAULT '',
    cancel_at        timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    completed_at     timestamptz,
    predict_ms       bigint NOT NULL DEFAULT 0,
    results_removed  boolean NOT NULL DEFAULT false,
    webhook          text NOT NULL DEFAULT '',
    webhook_events   text NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant_id, user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_waiting ON jobs (model, tenant_id, user_id, seq) WHERE status = 'starting';
CREATE INDEX jobs_owner ON jobs (tenant_id, user_id, seq);
CREATE INDEX jobs_cancel_at ON jobs (cancel_at) WHERE status = 'starting' AND cancel_at IS NOT NULL;
CREATE INDEX jobs_running ON jobs (seq) WHERE status = 'processing';
CREATE INDEX jobs_results ON jobs (model, completed_at) WHERE completed_at IS NOT NULL AND NOT results_removed;

CREATE TABLE job_lanes (
    model       text NOT NULL,
    tenant_id   text NOT NULL,
    user_id     text NOT NULL,
    priority    integer NOT NULL,
    max_running integer NOT NULL,
    head_seq    bigint NOT NULL,
    queued      integer NOT NULL,
    PRIMARY KEY (model, tenant_id, user_id)
) WITH (fillfactor = 50);

CREATE TABLE job_users (
    tenant_id       text NOT NULL,
    user_id         text NOT NULL,
    queued          integer NOT NULL DEFAULT 0,
    running         integer NOT NULL DEFAULT 0,
    last_started_at timestamptz,
    PRIMARY KEY (tenant_id, user_id)
) WITH (fillfactor = 50);

CREATE TABLE job_upstreams (
    url     text PRIMARY KEY,
    running integer NOT NULL DEFAULT 0
) WITH (fillfactor = 50);

-- +goose Down
DROP TABLE job_upstreams;
DROP TABLE job_users;
DROP TABLE job_lanes;
DROP TABLE jobs;

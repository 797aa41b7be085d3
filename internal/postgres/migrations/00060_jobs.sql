-- The job queue of the predictions API. jobs holds every job; job_lanes
-- one row per job model and user with the user's waiting count and oldest
-- waiting job, so picking the next job reads one row per waiting user,
-- never the whole queue; job_users each user's waiting and running counts
-- and when their last job started (fairness, max_queued, concurrency);
-- job_upstreams the jobs running on each upstream (capacity, global across
-- replicas: a pick locks the upstream's row). A pick reads one lane per
-- waiting user, never the queue. The counter tables are updated on every
-- submit and pick: no index covers a column that changes, and each page
-- keeps room (fillfactor), so the updates are HOT and leave no dead index
-- entries behind (an index on the lanes' order grew to 30 entries per
-- live lane under load and made picks slower, not faster).

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
    -- copies of the user's job_users.running and last_started_at, so a
    -- pick orders the lanes without a join
    user_running      integer NOT NULL DEFAULT 0,
    user_last_started timestamptz,
    PRIMARY KEY (model, tenant_id, user_id)
) WITH (fillfactor = 50);
CREATE INDEX job_lanes_user ON job_lanes (tenant_id, user_id);

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

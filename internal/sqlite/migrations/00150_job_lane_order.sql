-- The lanes carry copies of their user's running count and last start
-- (job_users), kept by every pick and finish, and an index in the pick's
-- order: plan priority, then the fewest running, then the longest since a
-- start (never first), then the oldest waiting job. A pick reads the
-- index's first lane that is under its concurrency cap, so it reads a few
-- rows whatever the queue's length or the users waiting; queued is the
-- index's last column, so the queue-position estimate reads the index
-- alone.

-- +goose Up
ALTER TABLE job_lanes ADD COLUMN user_running INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_lanes ADD COLUMN user_last_started INTEGER;
UPDATE job_lanes SET
    user_running = COALESCE((SELECT running FROM job_users u
        WHERE u.tenant_id = job_lanes.tenant_id AND u.user_id = job_lanes.user_id), 0),
    user_last_started = (SELECT last_started_at FROM job_users u
        WHERE u.tenant_id = job_lanes.tenant_id AND u.user_id = job_lanes.user_id);
DROP INDEX job_lanes_waiting;
CREATE INDEX job_lanes_order ON job_lanes (model, priority DESC, user_running, user_last_started, head_seq, queued)
    WHERE queued > 0;
CREATE INDEX job_lanes_user ON job_lanes (tenant_id, user_id);

-- +goose Down
DROP INDEX job_lanes_user;
DROP INDEX job_lanes_order;
CREATE INDEX job_lanes_waiting ON job_lanes (model, priority DESC, head_seq) WHERE queued > 0;
ALTER TABLE job_lanes DROP COLUMN user_last_started;
ALTER TABLE job_lanes DROP COLUMN user_running;

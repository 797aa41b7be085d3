-- An index on the lanes in the pick's order: plan priority, then the
-- fewest running, then the longest since a start (never first), then the
-- oldest waiting job. A pick reads the index's first lane that is under
-- its concurrency cap and not locked by another replica's pick, so it
-- reads a few rows whatever the queue's length or the users waiting. The
-- counter updates that move a lane in this order are no longer HOT; the
-- entries they leave behind sit where the lane was, are skipped once
-- seen dead, and vacuum removes them.

-- +goose Up
CREATE INDEX job_lanes_order ON job_lanes (model, priority DESC, user_running, user_last_started NULLS FIRST, head_seq)
    WHERE queued > 0;

-- +goose Down
DROP INDEX job_lanes_order;

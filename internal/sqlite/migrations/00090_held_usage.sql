-- Held usage records: the record of a job stays open while the job is
-- queued or running, across restarts, and is settled only by the job's
-- end; reconciliation leaves it open. held is 1 on such records.

-- +goose Up
ALTER TABLE usage_records ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
CREATE INDEX usage_held_open ON usage_records (started_at) WHERE settled = 0 AND held = 1;

-- +goose Down
DROP INDEX usage_held_open;
ALTER TABLE usage_records DROP COLUMN held;

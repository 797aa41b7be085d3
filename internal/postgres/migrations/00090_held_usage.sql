-- Held usage records: the record of a job stays open while the job is
-- queued or running, across restarts, and is settled only by the job's
-- end, by whichever replica ends it; reconciliation leaves it open.

-- +goose Up
ALTER TABLE usage_records ADD COLUMN held boolean NOT NULL DEFAULT false;
CREATE INDEX usage_held_open ON usage_records (started_at) WHERE NOT settled AND held;

-- +goose Down
DROP INDEX usage_held_open;
ALTER TABLE usage_records DROP COLUMN held;

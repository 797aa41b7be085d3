-- When a job was last sent to its upstream (dispatched_at, NULL while it
-- was picked but not yet sent) and how many times it was (attempts), so a
-- job that never reached its upstream, or that its upstream refused, is
-- queued again instead of failed. Jobs processing at the upgrade count as
-- sent: nothing says they were not.

-- +goose Up
ALTER TABLE jobs ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN dispatched_at timestamptz;
UPDATE jobs SET dispatched_at = started_at, attempts = 1 WHERE status = 'processing';

-- +goose Down
ALTER TABLE jobs DROP COLUMN dispatched_at;
ALTER TABLE jobs DROP COLUMN attempts;

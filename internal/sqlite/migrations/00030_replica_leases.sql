-- Replica leases: a process renews its lease while it runs; open usage
-- records of a process whose lease expired may be reconciled. Times are
-- INTEGER microseconds since the Unix epoch (UTC). replica is '' on
-- records written before leases.

-- +goose Up
ALTER TABLE usage_records ADD COLUMN replica TEXT NOT NULL DEFAULT '';
CREATE TABLE replica_leases (
    replica    TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE replica_leases;
ALTER TABLE usage_records DROP COLUMN replica;

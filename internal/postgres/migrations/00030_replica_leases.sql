-- Replica leases: each replica renews its lease while it runs; the open
-- usage records of a replica whose lease expired are reconciled by
-- another replica. replica is '' on records written before leases.

-- +goose Up
ALTER TABLE usage_records ADD COLUMN replica text NOT NULL DEFAULT '';
CREATE TABLE replica_leases (
    replica    text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE replica_leases;
ALTER TABLE usage_records DROP COLUMN replica;

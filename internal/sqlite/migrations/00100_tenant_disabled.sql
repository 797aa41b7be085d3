-- Tenants can be disabled (their users cannot authenticate) and renamed.
-- Times are INTEGER microseconds since the Unix epoch (UTC); NULL means
-- "never updated".

-- +goose Up
ALTER TABLE tenants ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN updated_at INTEGER;

-- +goose Down
ALTER TABLE tenants DROP COLUMN updated_at;
ALTER TABLE tenants DROP COLUMN disabled;

-- Tenants can be disabled (their users cannot authenticate) and renamed.
-- A NULL updated_at means "never updated".

-- +goose Up
ALTER TABLE tenants ADD COLUMN disabled boolean NOT NULL DEFAULT false;
ALTER TABLE tenants ADD COLUMN updated_at timestamptz;

-- +goose Down
ALTER TABLE tenants DROP COLUMN updated_at;
ALTER TABLE tenants DROP COLUMN disabled;

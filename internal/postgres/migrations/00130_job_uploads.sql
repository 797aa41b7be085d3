-- Uploaded input files (POST /v1/files), kept until expires_at; the
-- retention sweep deletes their bytes from the result store, then the
-- row.

-- +goose Up
CREATE TABLE job_uploads (
    id         text PRIMARY KEY,
    tenant_id  text NOT NULL,
    user_id    text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX job_uploads_expiry ON job_uploads (expires_at);

-- +goose Down
DROP TABLE job_uploads;

-- Uploaded input files (POST /v1/files), kept until expires_at; the
-- retention sweep deletes their bytes from the result store, then the
-- row. Times are INTEGER microseconds since the Unix epoch (UTC).

-- +goose Up
CREATE TABLE job_uploads (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX job_uploads_expiry ON job_uploads (expires_at);

-- +goose Down
DROP TABLE job_uploads;

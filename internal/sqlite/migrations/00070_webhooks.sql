-- Webhooks of the predictions API: each user's signing secret, and the
-- deliveries not yet made, so a pending one outlives a restart. Times are
-- INTEGER microseconds since the Unix epoch (UTC).

-- +goose Up
CREATE TABLE webhook_secrets (
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    secret     BLOB NOT NULL,
    encrypted  INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE webhook_deliveries (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    prediction_id TEXT NOT NULL,
    event         TEXT NOT NULL,
    url           TEXT NOT NULL,
    body          BLOB NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    lease_until   INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_lease ON webhook_deliveries (lease_until, created_at);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_secrets;

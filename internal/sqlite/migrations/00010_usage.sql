-- Usage ledger, budget overrides and sent budget alerts. Times are INTEGER
-- microseconds since the Unix epoch (UTC); money is INTEGER micro-units.
-- user_id and tenant_id carry no foreign key: users of external issuers
-- have no row, and records outlive deleted users.

-- +goose Up
CREATE TABLE usage_records (
    request_id       TEXT PRIMARY KEY,
    started_at       INTEGER NOT NULL,
    ended_at         INTEGER,
    tenant_id        TEXT NOT NULL DEFAULT '',
    user_id          TEXT NOT NULL DEFAULT '',
    route            TEXT NOT NULL DEFAULT '',
    model            TEXT NOT NULL DEFAULT '',
    outcome          TEXT NOT NULL DEFAULT '',
    status           INTEGER NOT NULL DEFAULT 0,
    bytes_in         INTEGER NOT NULL DEFAULT 0,
    bytes_out        INTEGER NOT NULL DEFAULT 0,
    latency_ms       INTEGER NOT NULL DEFAULT 0,
    input_tokens     INTEGER NOT NULL DEFAULT 0,
    output_tokens    INTEGER NOT NULL DEFAULT 0,
    images           INTEGER NOT NULL DEFAULT 0,
    megapixel_millis INTEGER NOT NULL DEFAULT 0,
    audio_millis     INTEGER NOT NULL DEFAULT 0,
    gpu_millis       INTEGER NOT NULL DEFAULT 0,
    cost             INTEGER NOT NULL DEFAULT 0,
    reserved         INTEGER NOT NULL DEFAULT 0,
    settled          INTEGER NOT NULL DEFAULT 0,
    seq              INTEGER -- export order; NULL while open
) STRICT;
CREATE INDEX usage_user_started ON usage_records (user_id, started_at);
CREATE INDEX usage_tenant_started ON usage_records (tenant_id, started_at);
CREATE INDEX usage_started ON usage_records (started_at);
CREATE UNIQUE INDEX usage_seq ON usage_records (seq) WHERE seq IS NOT NULL;
CREATE INDEX usage_open ON usage_records (started_at) WHERE settled = 0;

CREATE TABLE budget_overrides (
    scope      TEXT NOT NULL,
    id         TEXT NOT NULL,
    amount     INTEGER NOT NULL,
    period     TEXT NOT NULL,
    alerts     TEXT, -- comma-separated percentages; NULL: the plan's
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (scope, id)
) STRICT;

CREATE TABLE budget_alerts (
    scope        TEXT NOT NULL,
    id           TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    percent      INTEGER NOT NULL,
    sent_at      INTEGER NOT NULL,
    PRIMARY KEY (scope, id, period_start, percent)
) STRICT;

-- +goose Down
DROP TABLE budget_alerts;
DROP TABLE budget_overrides;
DROP TABLE usage_records;

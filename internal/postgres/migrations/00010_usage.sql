-- Usage ledger, budget overrides and sent budget alerts. Money is bigint
-- micro-units. user_id and tenant_id carry no foreign key: users of
-- external issuers have no row, and records outlive deleted users.

-- +goose Up
CREATE TABLE usage_records (
    request_id       text PRIMARY KEY,
    started_at       timestamptz NOT NULL,
    ended_at         timestamptz,
    tenant_id        text NOT NULL DEFAULT '',
    user_id          text NOT NULL DEFAULT '',
    route            text NOT NULL DEFAULT '',
    model            text NOT NULL DEFAULT '',
    outcome          text NOT NULL DEFAULT '',
    status           integer NOT NULL DEFAULT 0,
    bytes_in         bigint NOT NULL DEFAULT 0,
    bytes_out        bigint NOT NULL DEFAULT 0,
    latency_ms       bigint NOT NULL DEFAULT 0,
    input_tokens     bigint NOT NULL DEFAULT 0,
    output_tokens    bigint NOT NULL DEFAULT 0,
    images           bigint NOT NULL DEFAULT 0,
    megapixel_millis bigint NOT NULL DEFAULT 0,
    audio_millis     bigint NOT NULL DEFAULT 0,
    gpu_millis       bigint NOT NULL DEFAULT 0,
    cost             bigint NOT NULL DEFAULT 0,
    reserved         bigint NOT NULL DEFAULT 0,
    settled          boolean NOT NULL DEFAULT false,
    seq              bigint -- export order; NULL while open
);
CREATE INDEX usage_user_started ON usage_records (user_id, started_at);
CREATE INDEX usage_tenant_started ON usage_records (tenant_id, started_at);
CREATE INDEX usage_started ON usage_records (started_at);
CREATE UNIQUE INDEX usage_seq ON usage_records (seq) WHERE seq IS NOT NULL;
CREATE INDEX usage_open ON usage_records (started_at) WHERE NOT settled;

CREATE TABLE budget_overrides (
    scope      text NOT NULL,
    id         text NOT NULL,
    amount     bigint NOT NULL,
    period     text NOT NULL,
    alerts     integer[], -- NULL: the plan's
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (scope, id)
);

CREATE TABLE budget_alerts (
    scope        text NOT NULL,
    id           text NOT NULL,
    period_start timestamptz NOT NULL,
    percent      integer NOT NULL,
    sent_at      timestamptz NOT NULL,
    PRIMARY KEY (scope, id, period_start, percent)
);

-- +goose Down
DROP TABLE budget_alerts;
DROP TABLE budget_overrides;
DROP TABLE usage_records;

-- Webhooks of the predictions API: each user's signing secret, and the
-- deliveries not yet made, so a pending one outlives a restart.

-- +goose Up
CREATE TABLE webhook_secrets (
    tenant_id  text NOT NULL,
    user_id    text NOT NULL,
    secret     bytea NOT NULL,
    encrypted  boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE webhook_deliveries (
    id            text PRIMARY KEY,
    seq           bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id     text NOT NULL,
    user_id       text NOT NULL,
    prediction_id text NOT NULL,
    event         text NOT NULL,
    url           text NOT NULL,
    body          bytea NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL,
    lease_until   timestamptz NOT NULL
);
CREATE INDEX webhook_deliveries_lease ON webhook_deliveries (lease_until, created_at);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_secrets;

-- Identity tables: tenants, users, API keys, signing keys, refresh-token
-- families and the access-token denylist. NULL times mean "not set".

-- +goose Up
CREATE TABLE tenants (
    id         text PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);

CREATE TABLE users (
    id                 text PRIMARY KEY,
    name               text NOT NULL UNIQUE,
    tenant_id          text NOT NULL REFERENCES tenants (id),
    role               text NOT NULL DEFAULT '',
    plan               text NOT NULL DEFAULT '',
    password_hash      text NOT NULL DEFAULT '',
    disabled           boolean NOT NULL DEFAULT false,
    tokens_valid_after timestamptz,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX users_tenant_name ON users (tenant_id, name);

CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    user_id      text NOT NULL REFERENCES users (id),
    name         text NOT NULL DEFAULT '',
    hash         bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked      boolean NOT NULL DEFAULT false
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

CREATE TABLE signing_keys (
    id           text PRIMARY KEY,
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    algorithm    text NOT NULL,
    purpose      text NOT NULL,
    private_key  bytea NOT NULL,
    encrypted    boolean NOT NULL DEFAULT false,
    public_key   bytea NOT NULL,
    state        text NOT NULL,
    created_at   timestamptz NOT NULL,
    activate_at  timestamptz,
    retired_at   timestamptz,
    remove_after timestamptz
);
CREATE INDEX signing_keys_purpose ON signing_keys (purpose, created_at);

CREATE TABLE refresh_families (
    id         text PRIMARY KEY,
    user_id    text NOT NULL,
    expires_at timestamptz,
    revoked    boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);
CREATE INDEX refresh_families_expires ON refresh_families (expires_at);

CREATE TABLE refresh_tokens (
    hash       bytea PRIMARY KEY,
    family_id  text NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    user_id    text NOT NULL,
    scopes     text[] NOT NULL DEFAULT '{}',
    issued_at  timestamptz NOT NULL,
    expires_at timestamptz,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE revocations (
    issuer     text NOT NULL,
    jti        text NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX revocations_expires ON revocations (expires_at);

-- +goose Down
DROP TABLE revocations;
DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
DROP TABLE signing_keys;
DROP TABLE api_keys;
DROP TABLE users;
DROP TABLE tenants;

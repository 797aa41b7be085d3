-- Identity tables: tenants, users, API keys, signing keys, refresh-token
-- families and the access-token denylist. Times are INTEGER microseconds
-- since the Unix epoch (UTC); NULL means "not set".

-- +goose Up
CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    role               TEXT NOT NULL DEFAULT '',
    plan               TEXT NOT NULL DEFAULT '',
    password_hash      TEXT NOT NULL DEFAULT '',
    disabled           INTEGER NOT NULL DEFAULT 0,
    tokens_valid_after INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;
CREATE INDEX users_tenant_name ON users (tenant_id, name);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL DEFAULT '',
    hash         BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked      INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

CREATE TABLE signing_keys (
    id           TEXT PRIMARY KEY,
    algorithm    TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    private_key  BLOB NOT NULL,
    encrypted    INTEGER NOT NULL DEFAULT 0,
    public_key   BLOB NOT NULL,
    state        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    activate_at  INTEGER,
    retired_at   INTEGER,
    remove_after INTEGER
) STRICT;
CREATE INDEX signing_keys_purpose ON signing_keys (purpose, created_at);

CREATE TABLE refresh_families (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    expires_at INTEGER,
    revoked    INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX refresh_families_user ON refresh_families (user_id);
CREATE INDEX refresh_families_expires ON refresh_families (expires_at);

CREATE TABLE refresh_tokens (
    hash       BLOB PRIMARY KEY,
    family_id  TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    scopes     TEXT NOT NULL DEFAULT '',
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER,
    used_at    INTEGER
) STRICT;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE revocations (
    issuer     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
) STRICT;
CREATE INDEX revocations_expires ON revocations (expires_at);

-- +goose Down
DROP TABLE revocations;
DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
DROP TABLE signing_keys;
DROP TABLE api_keys;
DROP TABLE users;
DROP TABLE tenants;

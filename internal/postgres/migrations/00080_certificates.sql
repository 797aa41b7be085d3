-- TLS material obtained by ACME (accounts, certificates, keys, challenge
-- tokens) and the locks around obtaining it, shared by every replica.

-- +goose Up
CREATE TABLE cert_data (
    key      text PRIMARY KEY,
    value    bytea NOT NULL,
    modified timestamptz NOT NULL
);

CREATE TABLE cert_locks (
    name  text PRIMARY KEY,
    owner text NOT NULL,
    until timestamptz NOT NULL
);

-- +goose Down
DROP TABLE cert_locks;
DROP TABLE cert_data;

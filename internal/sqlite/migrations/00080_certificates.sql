-- TLS material obtained by ACME (accounts, certificates, keys, challenge
-- tokens) and the locks around obtaining it. Times are INTEGER
-- microseconds since the Unix epoch (UTC).

-- +goose Up
CREATE TABLE cert_data (
    key      TEXT PRIMARY KEY,
    value    BLOB NOT NULL,
    modified INTEGER NOT NULL
) STRICT;

CREATE TABLE cert_locks (
    name  TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE cert_locks;
DROP TABLE cert_data;

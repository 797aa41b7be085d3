-- IP bans (an address or a CIDR prefix), so bans outlive a restart and the
-- command line can add and lift them. Times are INTEGER microseconds since
-- the Unix epoch (UTC).

-- +goose Up
CREATE TABLE bans (
    ip         TEXT PRIMARY KEY,
    reason     TEXT NOT NULL DEFAULT '',
    until      INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX bans_until ON bans (until);

-- +goose Down
DROP TABLE bans;

-- IP bans (an address or a CIDR prefix), so bans outlive a restart and the
-- command line can add and lift them.

-- +goose Up
CREATE TABLE bans (
    ip         text PRIMARY KEY,
    reason     text NOT NULL DEFAULT '',
    until      timestamptz NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX bans_until ON bans (until);

-- +goose Down
DROP TABLE bans;

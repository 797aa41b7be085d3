-- The audit trail: logins, token requests, revocations, admin changes and
-- bans. seq orders the events and is the paging cursor. Times are INTEGER
-- microseconds since the Unix epoch (UTC).

-- +goose Up
CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL DEFAULT '',
    actor_name TEXT NOT NULL DEFAULT '',
    action     TEXT NOT NULL,
    target     TEXT NOT NULL DEFAULT '',
    outcome    TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    ip         TEXT NOT NULL DEFAULT '',
    detail     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_actor ON audit_events (actor);
CREATE INDEX audit_events_actor_name ON audit_events (actor_name);
CREATE INDEX audit_events_action ON audit_events (action);

-- +goose Down
DROP TABLE audit_events;

-- The audit trail: logins, token requests, revocations, admin changes and
-- bans. seq orders the events and is the paging cursor.

-- +goose Up
CREATE TABLE audit_events (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL,
    actor      text NOT NULL DEFAULT '',
    actor_name text NOT NULL DEFAULT '',
    action     text NOT NULL,
    target     text NOT NULL DEFAULT '',
    outcome    text NOT NULL,
    reason     text NOT NULL DEFAULT '',
    ip         text NOT NULL DEFAULT '',
    detail     text NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_actor ON audit_events (actor);
CREATE INDEX audit_events_actor_name ON audit_events (actor_name);
CREATE INDEX audit_events_action ON audit_events (action text_pattern_ops);

-- +goose Down
DROP TABLE audit_events;

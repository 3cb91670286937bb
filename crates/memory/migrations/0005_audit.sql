-- The guest side of the audit log (spec 10): approval requests and
-- decisions. Append-only and independent of sessions, so forgetting a
-- conversation never erases the record of what was approved in it.
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms       INTEGER NOT NULL,
    record_json TEXT NOT NULL
);
-- Reading from a point in time (`oxydra-runner audit --since`).
CREATE INDEX audit_events_time ON audit_events (at_ms);

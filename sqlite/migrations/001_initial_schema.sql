-- The audit log, with the column names of the original TypeScript system and of
-- the PostgreSQL store, so that queries and reports read the same on both.
--
-- Instants (timestamp, received_at, ingested_at, archived_at, *_failed_at) are
-- INTEGER microseconds since the Unix epoch, UTC: they compare and sort as
-- numbers whatever offset the producer wrote, take 8 bytes instead of ~27 for
-- ISO text, and have the same precision as PostgreSQL's timestamptz. The
-- producer's own text is kept in timestamp_raw, because the producer hash
-- covers that text byte for byte.
--
-- Optional text columns are NULL when the event did not carry the field.
-- STRICT makes SQLite enforce the declared types instead of silently storing,
-- for example, text in an INTEGER column.
CREATE TABLE audit_log (
    -- id is the sequence number (Seq): AUTOINCREMENT guarantees that an id is
    -- never handed out twice, even after the newest rows were deleted, which
    -- tamper-evident checkpoints over sequence ranges rely on.
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp            INTEGER NOT NULL,
    timestamp_raw        TEXT    NOT NULL,
    ttl                  TEXT,
    principal_id         TEXT,
    organization_id      TEXT,
    action               TEXT    NOT NULL,
    target_resource_type TEXT,
    target_resource_id   TEXT,
    status               TEXT    NOT NULL,
    outcome_description  TEXT,
    hash                 TEXT,
    hash_algorithm       TEXT,
    event_version        TEXT,
    correlation_id       TEXT,
    data_classification  TEXT,
    retention_policy     TEXT,
    processing_latency   REAL,
    archived_at          INTEGER,
    -- details holds the event's other fields as a JSON object, byte for byte as
    -- sent (the record hash covers these bytes).
    details              TEXT,
    idempotency_key      TEXT    NOT NULL,
    source               TEXT    NOT NULL,
    hash_status          TEXT    NOT NULL,
    signature            TEXT,
    signature_algorithm  TEXT,
    signature_status     TEXT    NOT NULL,
    record_hash          TEXT    NOT NULL,
    received_at          INTEGER,
    ingested_at          INTEGER NOT NULL
) STRICT;

-- A record is identified by its idempotency key and its event time, as in
-- PostgreSQL, where a unique index on the partitioned table must contain the
-- partition key (timestamp). It also serves look-ups by key alone.
CREATE UNIQUE INDEX audit_log_idempotency ON audit_log (idempotency_key, timestamp);

CREATE INDEX audit_log_timestamp    ON audit_log (timestamp);
CREATE INDEX audit_log_principal    ON audit_log (principal_id, timestamp);
CREATE INDEX audit_log_organization ON audit_log (organization_id, timestamp);
CREATE INDEX audit_log_target       ON audit_log (target_resource_type, target_resource_id);
CREATE INDEX audit_log_correlation  ON audit_log (correlation_id);

-- Events that were refused (invalid or tampered), kept so that nothing is lost.
-- One row per idempotency key: a redelivery of the same refused event raises
-- failure_count and last_failed_at instead of adding a row.
CREATE TABLE audit_dead_letter (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT    NOT NULL UNIQUE,
    source          TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    errors          TEXT,             -- JSON array of audit.FieldError, NULL if none
    payload         BLOB,             -- the event exactly as received; may be invalid UTF-8
    received_at     INTEGER,
    first_failed_at INTEGER NOT NULL,
    last_failed_at  INTEGER NOT NULL,
    failure_count   INTEGER NOT NULL DEFAULT 1
) STRICT;

-- audit_log: one row per accepted event, range-partitioned by month on the event
-- time. Column names follow the original system (docs/compatibility.md) so that its queries
-- and dashboards keep working; the types do not:
--   * every string is text: the original's varchar(255) limits sent valid events
--     to its dead-letter queue. Identifier columns use COLLATE "C": byte order is
--     the right order for ids, and it makes their b-trees several times cheaper
--     to maintain than a linguistic collation.
--   * details is json, not jsonb: json keeps the producer's exact bytes, so the
--     record hash can be recomputed from the row; ->/->> queries still work, and
--     it is cheaper to ingest (validated, not re-encoded).
--   * processing_latency is double precision: validation accepts any number >= 0.
--   * no defaults invent values (the original defaulted hash_algorithm, ...):
--     a row holds what the producer sent, an absent value is NULL.
-- id comes from a sequence and is the record's Seq: monotonically increasing,
-- never reused, the order tamper-evident checkpoints chain record hashes in.
CREATE SEQUENCE audit_log_id_seq AS bigint;

CREATE TABLE audit_log (
    id                   bigint      NOT NULL DEFAULT nextval('audit_log_id_seq'),
    "timestamp"          timestamptz NOT NULL,
    ttl                  text,
    principal_id         text COLLATE "C",
    organization_id      text COLLATE "C",
    action               text        NOT NULL,
    target_resource_type text COLLATE "C",
    target_resource_id   text COLLATE "C",
    status               text        NOT NULL,
    outcome_description  text,
    hash                 text,
    hash_algorithm       text,
    event_version        text,
    correlation_id       text COLLATE "C",
    data_classification  text,
    retention_policy     text,
    processing_latency   double precision,
    archived_at          timestamptz,
    details              json,
    -- Ours: what the worker adds to the event.
    timestamp_raw        text        NOT NULL, -- "timestamp" exactly as the producer wrote it (hashed)
    idempotency_key      text COLLATE "C" NOT NULL,
    source               text        NOT NULL,
    hash_status          text        NOT NULL,
    signature            text,
    signature_algorithm  text,                 -- the event's "algorithm" field
    signature_status     text        NOT NULL,
    record_hash          text        NOT NULL,
    received_at          timestamptz NOT NULL,
    ingested_at          timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE ("timestamp");

ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id;

-- Rows whose month has no partition (far past, far future, or a month the
-- maintenance loop has not reached yet) land here instead of failing, as they
-- did in the original. Creating a month's partition later moves them out.
CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;

-- Indexes. Unique and primary keys of a partitioned table must contain the
-- partition key, hence "timestamp" in both.
--   * primary key (id, "timestamp"): Seq paging (ListEvents, checkpoints) walks id.
--   * unique (idempotency_key, "timestamp"): idempotent inserts (ON CONFLICT) and
--     GetEvent; the key of a record is therefore (idempotency key, event time).
ALTER TABLE audit_log ADD PRIMARY KEY (id, "timestamp");
CREATE UNIQUE INDEX audit_log_idempotency_key_idx ON audit_log (idempotency_key, "timestamp");

-- Query indexes kept from the original's (audit questions: what happened when; what
-- did this user do; what happened in this tenant; who touched this record; what
-- belongs to this request). The composites with "timestamp" serve the usual
-- "newest first" ordering and also replace the single-column indexes on their
-- leading column.
CREATE INDEX audit_log_timestamp_idx ON audit_log ("timestamp");
CREATE INDEX audit_log_principal_id_timestamp_idx ON audit_log (principal_id, "timestamp");
CREATE INDEX audit_log_organization_id_timestamp_idx ON audit_log (organization_id, "timestamp");
CREATE INDEX audit_log_target_resource_idx ON audit_log (target_resource_type, target_resource_id);
CREATE INDEX audit_log_correlation_id_idx ON audit_log (correlation_id);

-- Dropped from the original's, because their write cost buys no useful query plan.
-- Measured with BenchmarkStoreBatchIndexes (postgres/bench_test.go, 1,000-event
-- batches, 2-core VM, medians of 3): keys only ~28,000 events/s, this set
-- ~21,800, this set plus the rest of the original's (13 more indexes) ~13,600.
--   * status, data_classification, retention_policy, (timestamp, status),
--     (data_classification, retention_policy): a handful of distinct values, so
--     an index matches a large share of a partition and the planner scans the
--     month (or the timestamp index) instead; these are filters, not access paths.
--   * action, (principal_id, action): action is low-cardinality on its own;
--     "what did this user do" is served by (principal_id, timestamp).
--   * principal_id, organization_id, target_resource_type, target_resource_id
--     alone: covered by the composites that lead with them (target_resource_id
--     alone is never queried without its type).
--   * hash: integrity checks verify rows by id or key, never look rows up by hash.
--   * archived_at: archival works on whole monthly partitions (detach, export,
--     drop), not on single rows.

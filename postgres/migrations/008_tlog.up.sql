-- The Merkle tree over the stored rows (docs/tamper-evidence.md).
-- tlog_leaves: one row per leaf, in leaf order. A leaf names its audit_log row
-- by (id, "timestamp"), the partitioned table's primary key, and keeps as
-- leaf_data the record hash the row had when it was integrated: a later
-- change to the row shows as a difference. The unique event_id index is
-- what the integrator's "rows not yet leaves" anti-join probes, and what
-- stops a row being integrated twice.
CREATE TABLE tlog_leaves (
    leaf_index  bigint      PRIMARY KEY,
    event_id    bigint      NOT NULL UNIQUE,
    event_time  timestamptz NOT NULL,
    leaf_data   bytea       NOT NULL CHECK (length(leaf_data) = 32)
);

-- tlog_hashes: the tree's stored hashes in golang.org/x/mod/sumdb/tlog's
-- layout (about two per leaf), from which any root or proof is computed.
CREATE TABLE tlog_hashes (
    hash_index bigint PRIMARY KEY,
    hash       bytea  NOT NULL CHECK (length(hash) = 32)
);

-- tlog_checkpoints: every signed checkpoint, keyed by tree size.
CREATE TABLE tlog_checkpoints (
    size       bigint      PRIMARY KEY,
    note       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

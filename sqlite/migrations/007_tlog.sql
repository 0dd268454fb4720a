-- The Merkle tree over the stored rows (docs/tamper-evidence.md), as in
-- PostgreSQL. tlog_leaves names each leaf's audit_log row and keeps as
-- leaf_data the record hash the row had when it was integrated; the unique
-- event_id index serves the "rows not yet leaves" anti-join and stops a
-- row being integrated twice.
CREATE TABLE tlog_leaves (
    leaf_index  INTEGER PRIMARY KEY,
    event_id    INTEGER NOT NULL UNIQUE,
    event_time  INTEGER NOT NULL,
    leaf_data   BLOB    NOT NULL CHECK (length(leaf_data) = 32)
) STRICT;

-- The tree's stored hashes in golang.org/x/mod/sumdb/tlog's layout.
CREATE TABLE tlog_hashes (
    hash_index INTEGER PRIMARY KEY,
    hash       BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;

-- Every signed checkpoint, keyed by tree size. created_at: Unix microseconds.
CREATE TABLE tlog_checkpoints (
    size       INTEGER PRIMARY KEY,
    note       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

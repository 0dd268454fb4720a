-- Search plans (docs/querying.md). Searches are ordered by (timestamp, id) and
-- page by keyset on that pair. In a rowid table every index ends in the rowid,
-- which is id, so the indexes of 001 on (column, timestamp) already return rows
-- in search order and take the keyset condition as a range: no new index is
-- needed for the filters the API offers.
--
-- What is needed is for SQLite to pick the right one. Without statistics it
-- takes the first equality it meets, and a search scoped to an organisation
-- and filtered by principal or correlation id walked every event of the
-- organisation (hundreds of milliseconds per page on a million events) to
-- find a handful. The store never runs ANALYZE (it would take minutes on a
-- large file and its result changes with the data), so these fixed figures
-- describe the shape of an audit log instead, as SQLite's documentation
-- allows: the number is the rows a lookup on the index's leading columns is
-- expected to return. An organisation holds many events, a principal a few
-- dozen, a correlation id or a resource a handful, an idempotency key one.
-- Only their ratios matter; a later ANALYZE replaces them with measured ones.
ANALYZE sqlite_schema;
DELETE FROM sqlite_stat1 WHERE tbl = 'audit_log';
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('audit_log', NULL,                     '1000000'),
    ('audit_log', 'audit_log_idempotency',  '1000000 1 1'),
    ('audit_log', 'audit_log_timestamp',    '1000000 2'),
    ('audit_log', 'audit_log_principal',    '1000000 50 2'),
    ('audit_log', 'audit_log_organization', '1000000 20000 2'),
    ('audit_log', 'audit_log_target',       '1000000 100000 5'),
    ('audit_log', 'audit_log_correlation',  '1000000 3');

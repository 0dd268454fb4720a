-- Search indexes (docs/querying.md): every search is ordered by ("timestamp",
-- id), newest or oldest first, and pages by keyset on that pair. An index that
-- ends in ("timestamp", id) returns rows already in that order, so a page is
-- read by walking the index from the cursor and stopping after `limit` rows,
-- however deep the page; the keyset condition ("timestamp", id) < ($t, $id) is
-- an index condition on it. The indexes of 001 end in "timestamp" alone, which
-- leaves a sort of every row sharing the index prefix. Each replacement below
-- costs 8 bytes more per entry than the index it replaces.
--
-- On the partitioned table, CREATE INDEX creates the index on every partition
-- (and on those created later).

-- Searches without an organisation or principal filter (a caller whose scope
-- is every organisation), with any other filter applied while walking.
DROP INDEX audit_log_timestamp_idx;
CREATE INDEX audit_log_timestamp_id_idx ON audit_log ("timestamp", id);

-- One organisation's events, with or without a time window; the filter
-- organization_id = $1 (one organisation) walks it in order.
DROP INDEX audit_log_organization_id_timestamp_idx;
CREATE INDEX audit_log_organization_id_timestamp_id_idx ON audit_log (organization_id, "timestamp", id);

-- What one principal did.
DROP INDEX audit_log_principal_id_timestamp_idx;
CREATE INDEX audit_log_principal_id_timestamp_id_idx ON audit_log (principal_id, "timestamp", id);

-- Everything one session did, everything from one address: the values live
-- inside details (sessionContext), so the indexes are on the expressions the
-- search compares, written exactly as postgres/search.go writes them. Without
-- them such a search reads and parses every row of the searched months.
CREATE INDEX audit_log_session_id_idx ON audit_log (((details -> 'sessionContext') ->> 'sessionId'), "timestamp", id);
CREATE INDEX audit_log_ip_address_idx ON audit_log (((details -> 'sessionContext') ->> 'ipAddress'), "timestamp", id);

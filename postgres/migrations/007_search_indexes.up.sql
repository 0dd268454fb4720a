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

-- Searches by action. Actions come in families (auth., fhir., data., …), and
-- a family prefix is a range on action, which cannot return rows in time
-- order: an index on action would sort a whole family per page. The search
-- also compares the family, split_part(action, '.', 1) (implied by the
-- action filter, so it changes no result), and this index walks a family in
-- search order: a page of auth.* reads ~150 pages instead of ~450 through the
-- time index, system.* ~150 instead of ~830 (5 million events).
CREATE INDEX audit_log_action_family_idx ON audit_log ((split_part(action, '.', 1)), "timestamp", id);

-- sessionId and ipAddress (inside details) have no index: one on each
-- expression halved the store's write rate (BenchmarkStoreBatchIndexes,
-- docs/querying.md), as every event's details would be parsed twice more.

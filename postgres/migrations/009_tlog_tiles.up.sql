-- The tree's stored hashes, packed: one row holds up to 32 consecutive hashes
-- of one level of the tree (hash n of level L is in tile n/32 at byte
-- 32*(n%32)). A row per hash made every stored row cost two more rows and
-- index entries on the write path; a tile costs one row per 32 hashes, and
-- the last tile of each level grows in place until it is full. 1 KiB rows
-- stay inline in the heap (no TOAST).
CREATE TABLE tlog_hash_tiles (
    level  smallint NOT NULL CHECK (level BETWEEN 0 AND 62),
    tile   bigint   NOT NULL CHECK (tile >= 0),
    hashes bytea    NOT NULL CHECK (length(hashes) BETWEEN 32 AND 1024 AND length(hashes) % 32 = 0),
    PRIMARY KEY (level, tile)
);

-- Moves the hashes of tlog_hashes into tiles. tlog_hashes keeps them in
-- golang.org/x/mod/sumdb/tlog's order: hash n of level L is at index
-- 2m - popcount(m) + L with m = (n+1)*2^L - 1. A tree of size leaves has
-- size >> L hashes at level L. A hash missing from tlog_hashes becomes 32 zero
-- bytes, which verification reports as a stored hash that differs.
WITH tree AS (
    SELECT COALESCE(max(leaf_index) + 1, 0) AS size FROM tlog_leaves
), wanted AS (
    SELECT l AS level, n, ((n + 1) << l) - 1 AS m
    FROM tree, generate_series(0, 62) AS l, generate_series(0, (tree.size >> l) - 1) AS n
)
INSERT INTO tlog_hash_tiles (level, tile, hashes)
SELECT w.level, w.n / 32,
       string_agg(COALESCE(h.hash, decode(repeat('00', 32), 'hex')), ''::bytea ORDER BY w.n)
FROM wanted w
LEFT JOIN tlog_hashes h ON h.hash_index = 2 * w.m - bit_count(w.m::bit(64)) + w.level
GROUP BY w.level, w.n / 32;

DROP TABLE tlog_hashes;

-- The integrator's floor: every row with an id at or below it is a leaf, or
-- will never be visible. A restarted integrator goes on from it instead of
-- walking the whole table for rows that are not leaves.
CREATE TABLE tlog_floor (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq bigint  NOT NULL
);
INSERT INTO tlog_floor (seq) VALUES (0);

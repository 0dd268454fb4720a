-- The integrator's floor: every row with an id at or below it is a leaf. A
-- restarted integrator goes on from it instead of walking the whole table
-- for rows that are not leaves.
CREATE TABLE tlog_floor (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    seq INTEGER NOT NULL
) STRICT;
INSERT INTO tlog_floor (one, seq) VALUES (1, 0);

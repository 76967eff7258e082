-- Schema version 4: the engine's times of a lease (became running, moved
-- into history) and the daily statistics rollup. Applied to a version 3
-- file in place, in the migration's one transaction. Leases stored before
-- version 4 read both times as NULL.
ALTER TABLE active ADD COLUMN running_at INTEGER;
ALTER TABLE active ADD COLUMN finished_at INTEGER;
ALTER TABLE finished ADD COLUMN running_at INTEGER;
ALTER TABLE finished ADD COLUMN finished_at INTEGER;

-- Counters of the finished leases created on one UTC day (ISO text
-- `YYYY-MM-DD`, so text order is day order), by owner and offering, one
-- row per counter name. `finish` adds to them in its own transaction
-- (`value = value + excluded.value`); they are never pruned. A range of
-- days is a range of the primary key.
CREATE TABLE daily_stats (
    day      TEXT NOT NULL,
    owner    TEXT NOT NULL,
    offering TEXT NOT NULL,
    name     TEXT NOT NULL,
    value    INTEGER NOT NULL,
    PRIMARY KEY (day, owner, offering, name)
) WITHOUT ROWID;

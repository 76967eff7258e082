-- Schema version 5: the statistics rollup split in two (see lease_core::stats),
-- so the dashboard reads O(days + log days × owners × offerings) rows instead
-- of days × owners × offerings. Applied to a version 4 file in place, in the
-- migration's one transaction; the rows of version 4 are carried over.

-- Every counter of the finished leases created on one UTC day (ISO text
-- `YYYY-MM-DD`), all owners and offerings together, one row per counter name.
CREATE TABLE stats_days (
    day   TEXT NOT NULL,
    name  TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (day, name)
) WITHOUT ROWID;

-- The share counters (provisions, booked_nanos, spent_nanos) per owner and
-- offering, per aligned span of 2^level days (level 0..8) starting at `start`
-- (ISO text): a finish adds to the 9 spans holding the creation day; a window
-- is read from the few spans covering it.
CREATE TABLE stats_shares (
    level    INTEGER NOT NULL,
    start    TEXT NOT NULL,
    owner    TEXT NOT NULL,
    offering TEXT NOT NULL,
    name     TEXT NOT NULL,
    value    INTEGER NOT NULL,
    PRIMARY KEY (level, start, owner, offering, name)
) WITHOUT ROWID;

INSERT INTO stats_days (day, name, value)
SELECT day, name, sum(value) FROM daily_stats GROUP BY day, name;

-- A span of 2^level days starts on a day whose number (days since
-- 1970-01-01) is a multiple of 2^level (lease_core::stats::Span::holding).
WITH RECURSIVE levels (level) AS (
    SELECT 0 UNION ALL SELECT level + 1 FROM levels WHERE level < 8
),
numbered AS (
    SELECT CAST(julianday(day) - julianday('1970-01-01') AS INTEGER) AS number,
           day, owner, offering, name, value
    FROM daily_stats
    WHERE name IN ('provisions', 'booked_nanos', 'spent_nanos')
)
INSERT INTO stats_shares (level, start, owner, offering, name, value)
SELECT level,
       date(day, '-' || (((number % (1 << level)) + (1 << level)) % (1 << level)) || ' days'),
       owner, offering, name, sum(value)
FROM numbered, levels
GROUP BY 1, 2, 3, 4, 5;

DROP TABLE daily_stats;

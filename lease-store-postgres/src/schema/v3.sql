-- Schema version 3: the statistics rollup split in two (see lease_core::stats),
-- so the dashboard reads O(days + log days × owners × offerings) rows instead of
-- days × owners × offerings. Applied to a version 2 schema in place, in the
-- migration's one transaction; the rows of version 2 are carried over.

-- Every counter of the finished leases created on one UTC day, all owners and
-- offerings together.
CREATE TABLE stats_days (
    day   DATE NOT NULL,
    name  TEXT COLLATE "C" NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (day, name)
);

-- The share counters (provisions, booked_nanos, spent_nanos) per owner and
-- offering, per aligned span of 2^level days (level 0..8) starting at `start`:
-- a finish adds to the 9 spans holding the creation day; a window is read from
-- the few spans covering it.
CREATE TABLE stats_shares (
    level    INTEGER NOT NULL,
    start    DATE NOT NULL,
    owner    TEXT COLLATE "C" NOT NULL,
    offering TEXT COLLATE "C" NOT NULL,
    name     TEXT COLLATE "C" NOT NULL,
    value    BIGINT NOT NULL,
    PRIMARY KEY (level, start, owner, offering, name)
);

INSERT INTO stats_days (day, name, value)
SELECT day, name, sum(value)::bigint FROM daily_stats GROUP BY day, name;

-- A span of 2^level days starts on a day whose number (days since 1970-01-01)
-- is a multiple of 2^level (lease_core::stats::Span::holding).
INSERT INTO stats_shares (level, start, owner, offering, name, value)
SELECT level,
       day - ((((day - DATE '1970-01-01') % (1 << level)) + (1 << level)) % (1 << level)),
       owner, offering, name, sum(value)::bigint
FROM daily_stats, generate_series(0, 8) AS level
WHERE name IN ('provisions', 'booked_nanos', 'spent_nanos')
GROUP BY 1, 2, 3, 4, 5;

DROP TABLE daily_stats;

-- Schema version 2: daily statistics (issue 19's dashboard). Applied to a
-- version 1 schema in place, in the migration's one transaction.

-- When the lease first ran and when the reaper moved it into history
-- (nanoseconds; NULL for leases stored before version 2).
ALTER TABLE active ADD COLUMN running_at BIGINT;
ALTER TABLE active ADD COLUMN finished_at BIGINT;
ALTER TABLE finished ADD COLUMN running_at BIGINT;
ALTER TABLE finished ADD COLUMN finished_at BIGINT;

-- Rollup counters of finished leases by the UTC day they were created,
-- owner and offering; `finish` adds to them in its one statement. Names
-- are opaque (lease_core::stats::counter). Kept forever, like usage.
CREATE TABLE daily_stats (
    day      DATE NOT NULL,
    owner    TEXT COLLATE "C" NOT NULL,
    offering TEXT COLLATE "C" NOT NULL,
    name     TEXT COLLATE "C" NOT NULL,
    value    BIGINT NOT NULL,
    PRIMARY KEY (day, owner, offering, name)
);

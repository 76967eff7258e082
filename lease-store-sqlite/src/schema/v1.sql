-- Schema version 1 of the ContainerLease lease database.
-- Times: INTEGER nanoseconds since the Unix epoch (UTC). Money: INTEGER nano-dollars.

-- Facts about the file itself: `namespace`, the deployment namespace whose
-- leases it holds (set by the first store that opens it with one).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- Active leases (not finished yet) and their claims. Rows are kept in
-- insertion order (seq), so leases due together, which were mostly created
-- together, share pages: a claim of 100 due leases writes few pages.
CREATE TABLE active (
    seq                INTEGER PRIMARY KEY,
    id                 TEXT NOT NULL UNIQUE,
    owner              TEXT NOT NULL,
    offering           TEXT NOT NULL,
    container_id       TEXT,
    status             TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    ended_at           INTEGER,
    end_reason         TEXT,
    hourly_rate        INTEGER NOT NULL,
    estimated_cost     INTEGER NOT NULL,
    final_cost         INTEGER,
    error              TEXT,
    provision_attempts INTEGER NOT NULL,
    removal_failures   INTEGER NOT NULL,
    revision           INTEGER NOT NULL,
    -- When the reaper should pick the lease up (expiry, or ended_at while deleting).
    due_at             INTEGER NOT NULL,
    -- Until when a reaper holds it (or when a released claim may be retried).
    claimed_until      INTEGER,
    -- max(due_at, claimed_until): what claims and next_due look at.
    claimable_at       INTEGER NOT NULL
);

CREATE INDEX active_by_claimable ON active (claimable_at);
CREATE INDEX active_by_created ON active (created_at, id);
CREATE INDEX active_by_owner ON active (owner, created_at, id);

-- Finished leases, kept for the history retention.
CREATE TABLE finished (
    id                 TEXT PRIMARY KEY NOT NULL,
    owner              TEXT NOT NULL,
    offering           TEXT NOT NULL,
    container_id       TEXT,
    status             TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    ended_at           INTEGER,
    end_reason         TEXT,
    hourly_rate        INTEGER NOT NULL,
    estimated_cost     INTEGER NOT NULL,
    final_cost         INTEGER,
    error              TEXT,
    provision_attempts INTEGER NOT NULL,
    removal_failures   INTEGER NOT NULL,
    revision           INTEGER NOT NULL,
    -- ended_at, or expires_at if it has none: the history order.
    ended_key          INTEGER NOT NULL
) WITHOUT ROWID;

-- Read backwards: newest end first, ties by id descending.
CREATE INDEX finished_by_end ON finished (ended_key, id);
CREATE INDEX finished_by_owner ON finished (owner, ended_key, id);

-- Each owner's totals of finished leases, kept forever.
CREATE TABLE usage (
    owner       TEXT PRIMARY KEY NOT NULL,
    ended_count INTEGER NOT NULL,
    ended_cost  INTEGER NOT NULL
) WITHOUT ROWID;

-- Schema version 6: warm-pool slot records (see lease_core::pool). A slot
-- is stored `filling` before its container is created, becomes `ready`
-- with the container's id, and `taken` (with the lease's id) in the same
-- transaction that makes the lease running on that container. Times are
-- nanoseconds since the epoch. Self-contained: it touches no other table.
CREATE TABLE pool_slots (
    id           TEXT PRIMARY KEY,
    offering     TEXT NOT NULL,
    image        TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('filling', 'ready', 'taken')),
    container_id TEXT,
    lease_id     TEXT,
    created_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX pool_slots_by_offering ON pool_slots (offering, state, created_at, id);

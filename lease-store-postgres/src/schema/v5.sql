-- Schema version 5: warm-pool slot records (see lease_core::pool). A slot
-- is stored 'filling' before its container is created, becomes 'ready'
-- with the container's id, and 'taken' (with the lease's id) in the same
-- transaction that makes the lease running on that container; a take
-- locks its slot FOR UPDATE SKIP LOCKED, so racing takers pick different
-- slots. Times: BIGINT nanoseconds. Self-contained: it touches no other
-- table (numbered after versions 3 and 4, merged before it).
CREATE TABLE pool_slots (
    id           TEXT COLLATE "C" PRIMARY KEY,
    offering     TEXT COLLATE "C" NOT NULL,
    image        TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('filling', 'ready', 'taken')),
    container_id TEXT,
    lease_id     TEXT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX pool_slots_by_offering ON pool_slots (offering, state, created_at, id);

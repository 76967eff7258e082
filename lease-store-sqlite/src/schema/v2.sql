-- Schema version 2: lease sizes, for the host's capacity limits, and an
-- index for an owner's spend of the day. Applied to a version 1 file in
-- place, in the migration's one transaction.

-- The offering's size when the lease was made (nano-CPUs, MiB). Leases
-- stored before version 2 read as size 0.
ALTER TABLE active ADD COLUMN nano_cpus INTEGER NOT NULL DEFAULT 0;
ALTER TABLE active ADD COLUMN memory_mb INTEGER NOT NULL DEFAULT 0;
ALTER TABLE finished ADD COLUMN nano_cpus INTEGER NOT NULL DEFAULT 0;
ALTER TABLE finished ADD COLUMN memory_mb INTEGER NOT NULL DEFAULT 0;

-- An owner's finished leases created since a moment (the daily spend). The
-- active table's side is active_by_owner (owner, created_at, id).
CREATE INDEX finished_by_owner_created ON finished (owner, created_at);

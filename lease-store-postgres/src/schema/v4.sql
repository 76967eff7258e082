-- Schema version 4: claims update leases in place (HOT updates).
--
-- Up to version 3 a claim rewrote `claimable_at` (max of due time and claim
-- end), which was indexed: every claimed row was a new row version with an
-- entry in each of the table's five indexes (12 ms for a claim of 100 among
-- 100,000 leases). Now the due-time index is on `due_at`, which claims and
-- releases never change, and the claim end `claimed_until` is in no index:
-- a claim or a release writes the row in place on its page (a heap-only
-- tuple update) and touches no index. Claims and `next_due` compute
-- max(due_at, claimed_until) in the statement.
--
-- Pages are filled to 75% so that those in-place updates (claims, releases,
-- the provisioning task's first update) find room on the row's own page;
-- new pages get it, old ones as they are rewritten.
--
-- Independent of the other versions' content: it touches only `active`'s
-- due-time columns and index.
ALTER TABLE active SET (fillfactor = 75);
CREATE INDEX active_by_due ON active (due_at);
DROP INDEX active_by_claimable;
ALTER TABLE active DROP COLUMN claimable_at;

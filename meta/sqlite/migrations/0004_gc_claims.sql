-- Exclusive gc claims.
--
-- A tombstone (deleting = 1) belongs to the run that claimed it: claim_token
-- is that run's random token, claim_expires (unix nanoseconds, on the
-- claimant's clock) the end of its lease. Only the holder deletes the bytes
-- and drops the row; another run takes a tombstone over only once its lease
-- has expired (the holder crashed), in the same statement that re-checks it.
-- Tombstones from before this migration have no token and an expired lease,
-- so the next run finishes them.
ALTER TABLE blobs ADD COLUMN claim_token TEXT NOT NULL DEFAULT '';
ALTER TABLE blobs ADD COLUMN claim_expires INTEGER NOT NULL DEFAULT 0;

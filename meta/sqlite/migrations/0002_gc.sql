-- Garbage collection.
--
-- deleting = 1 makes a blob row a tombstone: gc has claimed the blob (it had
-- no link and no reference) and is deleting its bytes. LinkBlob refuses a
-- tombstone, so no link can be made to bytes that are going away; gc removes
-- the row once the bytes are gone, and a crash in between leaves the
-- tombstone for the next run to finish.
ALTER TABLE blobs ADD COLUMN deleting INTEGER NOT NULL DEFAULT 0;

-- gc's listings: unreferenced links and old blob rows, expired uploads by id.
CREATE INDEX blob_links_created ON blob_links (created);

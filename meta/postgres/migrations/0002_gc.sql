-- Garbage collection: tombstones (see meta/sqlite's 0002).
ALTER TABLE blobs ADD COLUMN deleting INTEGER NOT NULL DEFAULT 0;

CREATE INDEX blob_links_created ON blob_links (created);

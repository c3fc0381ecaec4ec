-- Exclusive gc claims (see meta/sqlite's 0004).
ALTER TABLE blobs ADD COLUMN claim_token TEXT NOT NULL DEFAULT '';
ALTER TABLE blobs ADD COLUMN claim_expires BIGINT NOT NULL DEFAULT 0;

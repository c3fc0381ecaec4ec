-- The children of indexes on their own (see meta/sqlite's 0011).
CREATE INDEX manifest_refs_children ON manifest_refs (repo_id, manifest_digest, ord) WHERE kind = 2;

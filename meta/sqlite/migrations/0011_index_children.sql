-- The children of indexes (kind 2, meta.RefManifest) on their own: the
-- catalogue's listing of tagged indexes' children (CatalogChildren) read
-- every row of manifest_refs, most of them layers and configs, on each
-- page; with this index it reads the children alone.
CREATE INDEX manifest_refs_children ON manifest_refs (repo_id, manifest_digest, ord) WHERE kind = 2;

package postgres

// Every statement the store runs, in PostgreSQL's dialect; started from
// meta/sqlite's queries.go, the differences being JSONB for JSON, arrays
// of keys passed as one JSONB parameter (jsonb_array_elements), and IS
// DISTINCT FROM. pgx caches each statement's preparation per connection.
const (
	// Repositories.
	qEnsureRepo   = `INSERT INTO repositories (name, created) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`
	qRepoID       = `SELECT id FROM repositories WHERE name = $1`
	qRepositories = `SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2`

	// Blobs and links.
	qInsertBlob = `INSERT INTO blobs (digest, size, created) VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING`
	// Linking again refreshes created: gc's grace period runs from the
	// latest push or mount.
	qInsertLink = `INSERT INTO blob_links (repo_id, digest, created) VALUES ($1, $2, $3)
ON CONFLICT (repo_id, digest) DO UPDATE SET created = excluded.created`
	qBlobLink = `SELECT b.size
FROM blob_links l
JOIN repositories r ON r.id = l.repo_id
JOIN blobs b ON b.digest = l.digest
WHERE r.name = $1 AND l.digest = $2`
	qBlobDeleting = `SELECT deleting FROM blobs WHERE digest = $1`
	qLinked       = `SELECT 1 FROM blob_links WHERE repo_id = $1 AND digest = $2`
	qDeleteLink   = `DELETE FROM blob_links
WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND digest = $2`
	qBlobKnown = `SELECT b.size FROM blobs b
WHERE b.digest = $1 AND EXISTS (SELECT 1 FROM blob_links l WHERE l.digest = b.digest)`
	// By blob_links_digest, then the repository's name: ordered by name
	// after the join, so a page sorts only the links of one digest.
	qLinkingRepos = `SELECT r.name
FROM blob_links l JOIN repositories r ON r.id = l.repo_id
WHERE l.digest = $1 AND r.name > $2
ORDER BY r.name LIMIT $3`

	// Manifests.
	qInsertManifest = `INSERT INTO manifests (
    repo_id, digest, media_type, content, size, artifact_type, subject, config,
    annotations, labels, os, architecture, variant, created, total_size, pushed
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb, $11, $12, $13, $14, $15, $16)
ON CONFLICT (repo_id, digest) DO NOTHING`
	qInsertRef = `INSERT INTO manifest_refs (
    repo_id, manifest_digest, ord, ref_digest, kind, media_type, size, platform
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	qGetManifest = `SELECT m.repo_id, m.media_type, m.content, m.artifact_type, m.subject, m.config,
    m.annotations, m.labels, m.os, m.architecture, m.variant, m.created, m.total_size, m.pushed
FROM manifests m
JOIN repositories r ON r.id = m.repo_id
WHERE r.name = $1 AND m.digest = $2`
	qGetRefs = `SELECT ref_digest, kind, media_type, size, platform
FROM manifest_refs
WHERE repo_id = $1 AND manifest_digest = $2
ORDER BY ord`
	qDeleteTagsOf   = `DELETE FROM tags WHERE repo_id = $1 AND digest = $2`
	qDeleteRefsOf   = `DELETE FROM manifest_refs WHERE repo_id = $1 AND manifest_digest = $2`
	qDeleteManifest = `DELETE FROM manifests WHERE repo_id = $1 AND digest = $2`

	// Tags.
	qUpsertTag = `INSERT INTO tags (repo_id, name, digest, updated) VALUES ($1, $2, $3, $4)
ON CONFLICT (repo_id, name) DO UPDATE SET digest = excluded.digest, updated = excluded.updated
WHERE tags.digest IS DISTINCT FROM excluded.digest`
	qResolveTag = `SELECT t.digest
FROM tags t
JOIN repositories r ON r.id = t.repo_id
WHERE r.name = $1 AND t.name = $2`
	qDeleteTag = `DELETE FROM tags
WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2`
	qTags = `SELECT name FROM tags WHERE repo_id = $1 AND name > $2 ORDER BY name LIMIT $3`

	// Referrers.
	qReferrers = `SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations
FROM manifests m
JOIN repositories r ON r.id = m.repo_id
WHERE r.name = $1 AND m.subject = $2 AND m.digest > $3
ORDER BY m.digest LIMIT $4`
	qReferrersOfType = `SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations
FROM manifests m
JOIN repositories r ON r.id = m.repo_id
WHERE r.name = $1 AND m.subject = $2 AND m.digest > $3 AND m.artifact_type = $4
ORDER BY m.digest LIMIT $5`

	// Uploads.
	qCreateUpload = `INSERT INTO uploads (id, repo, byte_offset, state, created, updated, client)
VALUES ($1, $2, $3, $4, $5, $6, $7)`
	// Counts stop at the cap ($2): an index range scan of at most that
	// many rows (uploads_repo, uploads_client).
	qCountRepoUploads   = `SELECT COUNT(*) FROM (SELECT 1 FROM uploads WHERE repo = $1 LIMIT $2) s`
	qCountClientUploads = `SELECT COUNT(*) FROM (SELECT 1 FROM uploads WHERE client = $1 AND client <> '' LIMIT $2) s`
	qGetUpload          = `SELECT byte_offset, state, created, updated, client FROM uploads WHERE id = $1 AND repo = $2`
	qUpdateUpload       = `UPDATE uploads SET byte_offset = $1, state = $2, updated = $3
WHERE id = $4 AND byte_offset = $5`
	qUploadExists = `SELECT 1 FROM uploads WHERE id = $1`
	qDeleteUpload = `DELETE FROM uploads WHERE id = $1`

	// Garbage collection and fsck (gc.go). Listings are keyset-paged.
	qUntaggedManifests = `SELECT r.name, m.digest, m.subject, m.pushed,
    EXISTS (SELECT 1 FROM manifests s WHERE s.repo_id = m.repo_id AND s.digest = m.subject)
FROM manifests m
JOIN repositories r ON r.id = m.repo_id
WHERE (r.name, m.digest) > ($1, $2)
  AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)
  AND NOT EXISTS (SELECT 1 FROM manifest_refs f
                  WHERE f.repo_id = m.repo_id AND f.ref_digest = m.digest AND f.kind = 2)
ORDER BY r.name, m.digest LIMIT $3`
	qSweepManifestFacts = `SELECT m.pushed, m.subject,
    EXISTS (SELECT 1 FROM manifests s WHERE s.repo_id = m.repo_id AND s.digest = m.subject),
    EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest),
    EXISTS (SELECT 1 FROM manifest_refs f
            WHERE f.repo_id = m.repo_id AND f.ref_digest = m.digest AND f.kind = 2)
FROM manifests m
WHERE m.repo_id = $1 AND m.digest = $2`
	// UnreferencedLinks walks one repository at a time (qNextRepo), each
	// by blob_links' key, so a page costs the links it passes over and no
	// more. (A row-value cursor over the join, with the created index,
	// sorted every candidate for every page: quadratic in a store's links.)
	qNextRepo          = `SELECT id, name FROM repositories WHERE name > $1 ORDER BY name LIMIT 1`
	qUnreferencedLinks = `SELECT l.digest
FROM blob_links l
WHERE l.repo_id = $1 AND l.digest > $2 AND l.created < $3
  AND NOT EXISTS (SELECT 1 FROM manifest_refs f WHERE f.ref_digest = l.digest AND f.repo_id = l.repo_id)
ORDER BY l.digest LIMIT $4`
	// The batch statements take their keys as one JSON array ($1), read
	// with jsonb_array_elements, so each is one statement whatever the batch
	// size.
	qSweepLinks = `DELETE FROM blob_links
WHERE (repo_id, digest) IN (
        SELECT r.id, k ->> 1
        FROM jsonb_array_elements($1::jsonb) k JOIN repositories r ON r.name = k ->> 0)
  AND created < $2
  AND NOT EXISTS (SELECT 1 FROM manifest_refs f WHERE f.ref_digest = blob_links.digest AND f.repo_id = blob_links.repo_id)`
	qUnlinkedBlobs = `SELECT b.digest, b.size, b.deleting, b.claim_expires
FROM blobs b
WHERE b.digest > $1
  AND (b.deleting = 1 OR (b.created < $2
       AND NOT EXISTS (SELECT 1 FROM blob_links l WHERE l.digest = b.digest)
       AND NOT EXISTS (SELECT 1 FROM manifest_refs f WHERE f.ref_digest = b.digest)))
ORDER BY b.digest LIMIT $3`
	// ClaimBlobs ($1: [[digest, size], …]; $3: the run's token; $4: its
	// lease's end; $5: its time now): tombstones for the blobs with no row,
	// then the rows with no link, no reference and older than $2 become
	// the run's tombstones, and so do the batch's tombstones whose lease
	// ended (a crashed run's); then the batch's tombstones holding $3 are
	// the claimed set. Each row's condition is re-checked by the UPDATE
	// that takes it (on PostgreSQL the row lock orders two claimants: the
	// second re-reads the row and finds it taken).
	qInsertTombstones = `INSERT INTO blobs (digest, size, created, deleting, claim_token, claim_expires)
SELECT k ->> 0, (k ->> 1)::bigint, $2, 1, $3, $4 FROM jsonb_array_elements($1::jsonb) k
ON CONFLICT (digest) DO NOTHING`
	qMarkDeleting = `UPDATE blobs SET deleting = 1, claim_token = $3, claim_expires = $4
WHERE digest IN (SELECT k ->> 0 FROM jsonb_array_elements($1::jsonb) k)
  AND ((deleting = 0 AND created < $2
        AND NOT EXISTS (SELECT 1 FROM blob_links l WHERE l.digest = blobs.digest)
        AND NOT EXISTS (SELECT 1 FROM manifest_refs f WHERE f.ref_digest = blobs.digest))
    OR (deleting = 1 AND (claim_token = $3 OR claim_expires < $5)))`
	qClaimed = `SELECT digest, size, claim_expires FROM blobs
WHERE digest IN (SELECT k ->> 0 FROM jsonb_array_elements($1::jsonb) k)
  AND deleting = 1 AND claim_token = $2
ORDER BY digest`
	qDropBlobs = `DELETE FROM blobs
WHERE digest IN (SELECT jsonb_array_elements_text($1::jsonb)) AND deleting = 1 AND claim_token = $2`
	qBlobRecord  = `SELECT size, deleting, claim_expires FROM blobs WHERE digest = $1`
	qBlobRecords = `SELECT digest, size, deleting, claim_expires FROM blobs WHERE digest > $1 ORDER BY digest LIMIT $2`
	qLinks       = `SELECT r.name, l.digest
FROM blob_links l
JOIN repositories r ON r.id = l.repo_id
WHERE (r.name, l.digest) > ($1, $2)
ORDER BY r.name, l.digest LIMIT $3`
	qBlobRefs = `SELECT r.name, f.manifest_digest, f.ref_digest
FROM manifest_refs f
JOIN repositories r ON r.id = f.repo_id
WHERE f.kind = 1 AND (f.ref_digest, r.name, f.manifest_digest) > ($1, $2, $3)
GROUP BY f.ref_digest, r.name, f.manifest_digest
ORDER BY f.ref_digest, r.name, f.manifest_digest LIMIT $4`
	qExpiredUploads = `SELECT id FROM uploads WHERE updated < $1 AND id > $2 ORDER BY id LIMIT $3`
	qExpireUpload   = `DELETE FROM uploads WHERE id = $1 AND updated < $2`
)

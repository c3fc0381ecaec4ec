package postgres

import "github.com/berth-dev/berth/meta/internal/sqlstore"

// Every statement the store runs (meta/internal/sqlstore holds the code that
// runs them), in PostgreSQL's dialect; started from
// meta/sqlite's queries.go, the differences being JSONB for JSON, arrays
// of keys passed as one JSONB parameter (jsonb_array_elements), and IS
// DISTINCT FROM. pgx caches each statement's preparation per connection.

const (
	// Image manifest media types, as an SQL list (the catalogue and delta
	// queries; the index passes them as parameters).
	imageTypesSQL = `('application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json')`
)

// queries are every statement of the store, in this dialect.
var queries = sqlstore.Queries{
	Dialect: sqlstore.Dialect{Label: labelArg, MapCond: mapCond},

	// Statements of meta/internal/sqlstore/blobs.go.
	LinkCreated: `SELECT l.created FROM blob_links l JOIN repositories r ON r.id = l.repo_id
WHERE r.name = $1 AND l.digest = $2`,
	TouchLink: `UPDATE blob_links SET created = $3
WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND digest = $2 AND created < $4`,

	// Statements of meta/internal/sqlstore/catalog.go.
	// Catalogue queries. The Flatpak ref label is a parameter.
	CatalogTags: `SELECT r.name, t.name, t.digest, t.updated,
    m.media_type, m.artifact_type, m.os, m.architecture, m.variant, m.total_size, m.created, m.pushed,
    COALESCE(m.labels ->> $4, '')
FROM tags t
JOIN repositories r ON r.id = t.repo_id
JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest
WHERE (r.name, t.name) > ($1, $2)
ORDER BY r.name, t.name LIMIT $3`,
	// One repository's rows of the two above ($1 the repository, $2 the
	// label), bounded by it rather than by a page.
	CatalogRepoTags: `SELECT r.name, t.name, t.digest, t.updated,
    m.media_type, m.artifact_type, m.os, m.architecture, m.variant, m.total_size, m.created, m.pushed,
    COALESCE(m.labels ->> $2, '')
FROM repositories r
JOIN tags t ON t.repo_id = r.id
JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest
WHERE r.name = $1
ORDER BY t.name`,
	CatalogRepoChildren: `SELECT r.name, f.manifest_digest, f.ord, f.ref_digest, f.media_type, f.size, f.platform,
    c.digest IS NOT NULL, COALESCE(c.os, ''), COALESCE(c.architecture, ''), COALESCE(c.variant, ''),
    COALESCE(c.total_size, 0), COALESCE(c.labels ->> $2, '')
FROM repositories r
JOIN manifest_refs f ON f.repo_id = r.id
LEFT JOIN manifests c ON c.repo_id = f.repo_id AND c.digest = f.ref_digest
WHERE r.name = $1 AND f.kind = 2
  AND EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = f.repo_id AND t.digest = f.manifest_digest)
ORDER BY f.manifest_digest, f.ord`,
	CatalogChildren: `SELECT r.name, f.manifest_digest, f.ord, f.ref_digest, f.media_type, f.size, f.platform,
    c.digest IS NOT NULL, COALESCE(c.os, ''), COALESCE(c.architecture, ''), COALESCE(c.variant, ''),
    COALESCE(c.total_size, 0), COALESCE(c.labels ->> $5, '')
FROM manifest_refs f
JOIN repositories r ON r.id = f.repo_id
LEFT JOIN manifests c ON c.repo_id = f.repo_id AND c.digest = f.ref_digest
WHERE f.kind = 2 AND (r.name, f.manifest_digest, f.ord) > ($1, $2, $3)
  AND EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = f.repo_id AND t.digest = f.manifest_digest)
ORDER BY r.name, f.manifest_digest, f.ord LIMIT $4`,

	// Statements of meta/internal/sqlstore/deltas.go.
	// Tagged image manifests with the label $1 (a JSON path) and no plan,
	// oldest push first, at most $2.
	UnplannedTargets: `SELECT r.name, m.digest, m.labels ->> $1, m.pushed
FROM manifests m
JOIN repositories r ON r.id = m.repo_id
WHERE m.media_type IN ` + imageTypesSQL + `
  AND m.labels ? $1
  AND EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)
  AND NOT EXISTS (SELECT 1 FROM delta_targets d WHERE d.repo = r.name AND d.target = m.digest)
ORDER BY m.pushed, r.name, m.digest
LIMIT $2`,
	// The image manifests of repository $1 whose label ($2, a JSON path)
	// is $3, pushed at or before the manifest $4 and after $5 (unix ns),
	// other than $4: newest first, at most $6.
	EarlierVersions: `SELECT m.digest
FROM manifests m
JOIN repositories r ON r.id = m.repo_id
WHERE r.name = $1 AND m.media_type IN ` + imageTypesSQL + `
  AND m.labels ->> $2 = $3
  AND m.digest <> $4
  AND m.pushed <= (SELECT t.pushed FROM manifests t WHERE t.repo_id = m.repo_id AND t.digest = $4)
  AND m.pushed > $5
ORDER BY m.pushed DESC, m.digest DESC
LIMIT $6`,
	ManifestExistsByName: `SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repo_id
WHERE r.name = $1 AND m.digest = $2`,
	InsertDeltaTarget: `INSERT INTO delta_targets (repo, target, planned) VALUES ($1, $2, $3)
ON CONFLICT (repo, target) DO NOTHING`,
	InsertDeltaPair: `INSERT INTO delta_pairs (repo, target, source, state, created, updated)
VALUES ($1, $2, $3, 'pending', $4, $4)
ON CONFLICT (repo, target, source) DO NOTHING`,
	// The oldest pending pair whose lease ended before $1.
	ClaimableDelta: `SELECT repo, target, source, attempts FROM delta_pairs
WHERE state = 'pending' AND lease_until < $1
ORDER BY created, repo, target, source LIMIT 1`,
	LeaseDelta: `UPDATE delta_pairs SET lease_token = $4, lease_until = $5, attempts = attempts + 1, updated = $6
WHERE repo = $1 AND target = $2 AND source = $3 AND state = 'pending' AND lease_until < $6`,
	RenewDelta: `UPDATE delta_pairs SET lease_until = $5
WHERE repo = $1 AND target = $2 AND source = $3 AND state = 'pending' AND lease_token = $4`,
	FinishDelta: `UPDATE delta_pairs SET state = $5, blob = $6, size = $7, diff_from = $8, diff_to = $9,
    layer_size = $10, detail = $11, lease_token = '', lease_until = 0, updated = $12
WHERE repo = $1 AND target = $2 AND source = $3 AND state = 'pending' AND lease_token = $4`,
	RequeueDelta: `UPDATE delta_pairs SET state = 'pending', blob = '', size = 0, detail = $4,
    lease_token = '', lease_until = 0, updated = $5
WHERE repo = $1 AND target = $2 AND source = $3 AND state = 'ready'`,
	ReleaseDeltaLeases: `UPDATE delta_pairs SET lease_token = '', lease_until = 0 WHERE state = 'pending' AND lease_token <> ''`,
	DeltaPairs: `SELECT p.repo, p.target, p.source, p.state, p.blob, p.size, p.diff_from, p.diff_to, p.layer_size, p.detail,
    p.attempts, p.created, p.updated,
    COALESCE((SELECT m.pushed FROM manifests m JOIN repositories r ON r.id = m.repo_id
              WHERE r.name = p.repo AND m.digest = p.source), 0)
FROM delta_pairs p WHERE p.repo = $1
ORDER BY p.target, p.created, p.source`,
	DeltaRepos: `SELECT DISTINCT repo FROM (
    SELECT repo FROM delta_pairs UNION SELECT repo FROM delta_manifests
) d ORDER BY repo`,
	// Pairs (and plans) whose target or source is no longer a manifest of
	// their repository.
	DropGoneDeltaPairs: `DELETE FROM delta_pairs AS p
WHERE NOT EXISTS (SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repo_id
                  WHERE r.name = p.repo AND m.digest = p.target)
   OR NOT EXISTS (SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repo_id
                  WHERE r.name = p.repo AND m.digest = p.source)
RETURNING repo`,
	DropGoneDeltaTargets: `DELETE FROM delta_targets AS d
WHERE NOT EXISTS (SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repo_id
                  WHERE r.name = d.repo AND m.digest = d.target)`,
	ResetDeltaPairs:   `DELETE FROM delta_pairs WHERE repo = $1`,
	ResetDeltaTargets: `DELETE FROM delta_targets WHERE repo = $1`,
	DeltaManifests:    `SELECT repo, digest, target, retired FROM delta_manifests WHERE repo = $1 ORDER BY target, digest`,
	InsertDeltaManif: `INSERT INTO delta_manifests (repo, digest, target, retired) VALUES ($1, $2, $3, 0)
ON CONFLICT (repo, digest) DO UPDATE SET target = excluded.target, retired = 0`,
	RetireDeltaManif: `UPDATE delta_manifests SET retired = $3 WHERE repo = $1 AND digest = $2 AND retired = 0`,
	RetiredDeltas: `SELECT repo, digest, target, retired FROM delta_manifests
WHERE retired <> 0 AND retired < $1 ORDER BY retired, repo, digest LIMIT $2`,
	ForgetDeltaManif: `DELETE FROM delta_manifests WHERE repo = $1 AND digest = $2 AND retired <> 0`,

	// Statements of meta/internal/sqlstore/events.go.
	// The events outbox (migration 0006). Events are written by the changes
	// themselves (manifests.go, blobs.go) through insertEvent, inside their
	// transactions.
	InsertEvent: `INSERT INTO events (seq, id, type, repo, actor, created, payload)
VALUES (nextval('events_seq'), $1, $2, $3, $4, $5, $6)`,
	// outboxLock is the advisory lock key that orders event-writing
	// transactions ("berthevt"; migration 0006).
	LockOutbox: `SELECT pg_advisory_xact_lock(7089076541466391668)`,
	Events:     `SELECT seq, id, type, repo, actor, created, payload FROM events WHERE seq > $1 ORDER BY seq LIMIT $2`,
	// events_seq keeps the highest seq ever given, pruned or not. A
	// sequence is not transactional: a writer between its nextval and its
	// commit has a seq no reader can see yet. So the sequence is read under
	// the outbox lock taken shared (the lateral reference orders it after
	// the lock), which waits for such a writer: the seq read is committed.
	LastEventSeq: `SELECT (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_seq WHERE l.locked)
FROM (SELECT true AS locked, pg_advisory_xact_lock_shared(7089076541466391668)) l`,
	InitCursor: `INSERT INTO event_cursors (consumer, seq, updated)
SELECT $1, (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_seq WHERE l.locked), $2
FROM (SELECT true AS locked, pg_advisory_xact_lock_shared(7089076541466391668)) l
ON CONFLICT (consumer) DO NOTHING`,
	Cursor: `SELECT seq FROM event_cursors WHERE consumer = $1`,
	SetCursor: `INSERT INTO event_cursors (consumer, seq, updated) VALUES ($1, $2, $3)
ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq, updated = excluded.updated
WHERE excluded.seq > event_cursors.seq`,
	// PruneEvents deletes at most $3 rows per statement (a short write
	// transaction however large the backlog): those written before $1 at
	// or below the lowest cursor of the consumers named in $2 (a JSON
	// array; none named: no bound).
	PruneEvents: `DELETE FROM events WHERE seq IN (
    SELECT seq FROM events
    WHERE created < $1
      AND seq <= COALESCE((SELECT MIN(c.seq) FROM event_cursors c
                           WHERE c.consumer IN (SELECT jsonb_array_elements_text($2::jsonb))),
                          CASE WHEN jsonb_array_length($2::jsonb) = 0 THEN 9223372036854775807 ELSE 0 END)
    ORDER BY seq LIMIT $3)`,
	// Tags, for tag events: what a tag points at now, and the tags of a
	// manifest about to be deleted.
	TagDigest: `SELECT digest FROM tags WHERE repo_id = $1 AND name = $2`,
	TagsOf:    `SELECT name FROM tags WHERE repo_id = $1 AND digest = $2 ORDER BY name`,

	// Statements of meta/internal/sqlstore/icons_access.go.
	// qIconRepositories lists, in byte order and once each, the repositories
	// holding a manifest that shows the icon $1 (manifest_icons_icon indexes
	// the lookup).
	IconRepositories: `SELECT DISTINCT r.name
FROM manifest_icons i
JOIN repositories r ON r.id = i.repo_id
WHERE i.icon = $1
ORDER BY r.name`,

	// Statements of meta/internal/sqlstore/index.go.
	IndexGeneration:   `SELECT COALESCE(SUM(value), 0)::bigint FROM index_generation WHERE scope = 'all'`,
	FlatpakGeneration: `SELECT COALESCE(SUM(value), 0)::bigint FROM index_generation WHERE scope = 'flatpak'`,

	// Tagged image manifests; $1 and $2 are the image media types, %[1]s
	// adds conditions on m and r, %[2]s on the tag t.
	IndexImages: `SELECT r.name, m.digest, m.media_type, m.annotations, m.labels, m.os, m.architecture,
    m.variant, m.created, m.total_size, m.pushed,
    COALESCE((SELECT json_agg(t.name ORDER BY t.name) FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)::text, '[]'),
    COALESCE((SELECT json_object_agg(i.size, i.icon) FROM manifest_icons i WHERE i.repo_id = m.repo_id AND i.manifest_digest = m.digest)::text, '{}')
FROM manifests m
JOIN repositories r ON r.id = m.repo_id
WHERE m.media_type IN ($1, $2)
  AND EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest%[2]s)%[1]s
ORDER BY r.name, m.digest`,

	// The image manifests of tagged indexes ($1, $2: image media types; $3,
	// $4: index media types); %[1]s adds conditions on the
	// child c and r, %[2]s on the index's tag t.
	IndexListImages: `SELECT r.name, l.digest, l.media_type, l.annotations,
    COALESCE((SELECT json_agg(t.name ORDER BY t.name) FROM tags t WHERE t.repo_id = l.repo_id AND t.digest = l.digest)::text, '[]'),
    c.digest, c.media_type, c.annotations, c.labels, c.os, c.architecture,
    c.variant, c.created, c.total_size, c.pushed,
    COALESCE((SELECT json_object_agg(i.size, i.icon) FROM manifest_icons i WHERE i.repo_id = c.repo_id AND i.manifest_digest = c.digest)::text, '{}')
FROM manifests l
JOIN repositories r ON r.id = l.repo_id
JOIN manifest_refs f ON f.repo_id = l.repo_id AND f.manifest_digest = l.digest AND f.kind = 2
JOIN manifests c ON c.repo_id = f.repo_id AND c.digest = f.ref_digest
WHERE l.media_type IN ($3, $4)
  AND c.media_type IN ($1, $2)
  AND EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = l.repo_id AND t.digest = l.digest%[2]s)%[1]s
ORDER BY r.name, l.digest, f.ord`,

	IconManifestExists: `SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repo_id
WHERE r.name = $1 AND m.digest = $2`,
	InsertIcon: `INSERT INTO icons (digest, png, created) VALUES ($1, $2, $3)
ON CONFLICT (digest) DO NOTHING`,
	PutManifestIcon: `INSERT INTO manifest_icons (repo_id, manifest_digest, size, icon)
VALUES ((SELECT id FROM repositories WHERE name = $1), $2, $3, $4)
ON CONFLICT (repo_id, manifest_digest, size) DO UPDATE SET icon = excluded.icon`,
	Icon: `SELECT png FROM icons WHERE digest = $1`,
	// Manifests whose icon labels (or annotations) hold data: URIs and
	// which show no icon, after the cursor ($1, $2), at most $3.
	ManifestsWithoutIcons: `SELECT r.name, m.digest,
    m.labels ->> $4, m.labels ->> $5, m.annotations ->> $4, m.annotations ->> $5
FROM manifests m
JOIN repositories r ON r.id = m.repo_id
WHERE (r.name, m.digest) > ($1, $2)
  AND (m.labels ->> $4 LIKE 'data:%'
    OR m.labels ->> $5 LIKE 'data:%'
    OR m.annotations ->> $4 LIKE 'data:%'
    OR m.annotations ->> $5 LIKE 'data:%')
  AND NOT EXISTS (SELECT 1 FROM manifest_icons i WHERE i.repo_id = m.repo_id AND i.manifest_digest = m.digest)
ORDER BY r.name, m.digest LIMIT $3`,
	// The icons of the manifests named in $1, a JSON array of
	// [repository, digest] pairs.
	ManifestIcons: `SELECT k ->> 0, k ->> 1, i.size, i.icon
FROM jsonb_array_elements($1::jsonb) k
JOIN repositories r ON r.name = k ->> 0
JOIN manifest_icons i ON i.repo_id = r.id AND i.manifest_digest = k ->> 1`,

	// Statements of meta/internal/sqlstore/installs.go.
	AddInstalls: `INSERT INTO flatpak_installs (day, repo, ref, version, kind, count)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (day, repo, ref, version, kind) DO UPDATE SET count = flatpak_installs.count + excluded.count`,
	InstallTotals: `SELECT repo, ref, version, kind, SUM(count) FROM flatpak_installs
WHERE day >= $1
GROUP BY repo, ref, version, kind
ORDER BY repo, ref, version, kind`,
	// The manifests of repository $1 that reference blob $2 (config or
	// layer), at most $3.
	BlobUsers: `SELECT m.digest, m.config, m.artifact_type, m.annotations, m.labels
FROM manifest_refs f
JOIN repositories r ON r.id = f.repo_id
JOIN manifests m ON m.repo_id = f.repo_id AND m.digest = f.manifest_digest
WHERE f.ref_digest = $2 AND r.name = $1 AND f.kind = 1
GROUP BY m.repo_id, m.digest
ORDER BY m.pushed DESC, m.digest LIMIT $3`,

	// Statements of meta/internal/sqlstore/leases.go.
	// Take a free or expired lease, or renew one's own; no row changes
	// when another holder's lease is live.
	HoldLease: `INSERT INTO leases (name, holder, expires) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
WHERE leases.holder = excluded.holder OR leases.expires <= $4`,
	ReleaseLease: `DELETE FROM leases WHERE name = $1 AND holder = $2`,

	// Statements of meta/internal/sqlstore/manifests.go.
	// qManifestSizes takes the digests as one JSON array ($2).
	ManifestSizes: `SELECT m.digest, m.size, m.total_size
FROM manifests m JOIN repositories r ON r.id = m.repo_id
WHERE r.name = $1 AND m.digest IN (SELECT jsonb_array_elements_text($2::jsonb))`,

	// Statements of meta/internal/sqlstore/stats.go.
	// qStats counts from the smallest structure that holds each figure: the
	// manifests are counted by an index, never by reading their content, and
	// a tombstoned blob (gc deleting it) no longer counts.
	Stats: `SELECT
	(SELECT count(*) FROM repositories),
	(SELECT count(*) FROM manifests),
	(SELECT count(*) FROM blobs WHERE deleting = 0),
	(SELECT coalesce(sum(size), 0) FROM blobs WHERE deleting = 0),
	(SELECT count(*) FROM uploads)`,

	// The statements of the rest of the store.
	// Repositories.
	EnsureRepo:   `INSERT INTO repositories (name, created) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
	RepoID:       `SELECT id FROM repositories WHERE name = $1`,
	Repositories: `SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2`,

	// Blobs and links.
	InsertBlob: `INSERT INTO blobs (digest, size, created) VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING`,
	// Linking again refreshes created: gc's grace period runs from the
	// latest push or mount.
	InsertLink: `INSERT INTO blob_links (repo_id, digest, created) VALUES ($1, $2, $3)
ON CONFLICT (repo_id, digest) DO UPDATE SET created = excluded.created`,
	BlobLink: `SELECT b.size
FROM blob_links l
JOIN repositories r ON r.id = l.repo_id
JOIN blobs b ON b.digest = l.digest
WHERE r.name = $1 AND l.digest = $2`,
	BlobDeleting: `SELECT deleting FROM blobs WHERE digest = $1`,
	Linked:       `SELECT 1 FROM blob_links WHERE repo_id = $1 AND digest = $2`,
	DeleteLink: `DELETE FROM blob_links
WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND digest = $2`,
	BlobKnown: `SELECT b.size FROM blobs b
WHERE b.digest = $1 AND EXISTS (SELECT 1 FROM blob_links l WHERE l.digest = b.digest)`,
	// By blob_links_digest, then the repository's name: ordered by name
	// after the join, so a page sorts only the links of one digest.
	LinkingRepos: `SELECT r.name
FROM blob_links l JOIN repositories r ON r.id = l.repo_id
WHERE l.digest = $1 AND r.name > $2
ORDER BY r.name LIMIT $3`,

	// Manifests.
	InsertManifest: `INSERT INTO manifests (
    repo_id, digest, media_type, content, size, artifact_type, subject, config,
    annotations, labels, os, architecture, variant, created, total_size, pushed
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb, $11, $12, $13, $14, $15, $16)
ON CONFLICT (repo_id, digest) DO NOTHING`,
	InsertRef: `INSERT INTO manifest_refs (
    repo_id, manifest_digest, ord, ref_digest, kind, media_type, size, platform
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
	GetManifest: `SELECT m.repo_id, m.media_type, m.content, m.artifact_type, m.subject, m.config,
    m.annotations, m.labels, m.os, m.architecture, m.variant, m.created, m.total_size, m.pushed
FROM manifests m
JOIN repositories r ON r.id = m.repo_id
WHERE r.name = $1 AND m.digest = $2`,
	GetRefs: `SELECT ref_digest, kind, media_type, size, platform
FROM manifest_refs
WHERE repo_id = $1 AND manifest_digest = $2
ORDER BY ord`,
	DeleteTagsOf:   `DELETE FROM tags WHERE repo_id = $1 AND digest = $2`,
	DeleteRefsOf:   `DELETE FROM manifest_refs WHERE repo_id = $1 AND manifest_digest = $2`,
	DeleteManifest: `DELETE FROM manifests WHERE repo_id = $1 AND digest = $2`,

	// Tags.
	UpsertTag: `INSERT INTO tags (repo_id, name, digest, updated) VALUES ($1, $2, $3, $4)
ON CONFLICT (repo_id, name) DO UPDATE SET digest = excluded.digest, updated = excluded.updated
WHERE tags.digest IS DISTINCT FROM excluded.digest`,
	// What a manifest GET serves, by digest and by tag.
	ManifestBody: `SELECT m.media_type, m.content
FROM manifests m
JOIN repositories r ON r.id = m.repo_id
WHERE r.name = $1 AND m.digest = $2`,
	TagBody: `SELECT t.digest, m.media_type, m.content
FROM tags t
JOIN repositories r ON r.id = t.repo_id
JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest
WHERE r.name = $1 AND t.name = $2`,
	ResolveTag: `SELECT t.digest
FROM tags t
JOIN repositories r ON r.id = t.repo_id
WHERE r.name = $1 AND t.name = $2`,
	DeleteTag: `DELETE FROM tags
WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2`,
	Tags: `SELECT name FROM tags WHERE repo_id = $1 AND name > $2 ORDER BY name LIMIT $3`,

	// Referrers.
	Referrers: `SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations
FROM manifests m
JOIN repositories r ON r.id = m.repo_id
WHERE r.name = $1 AND m.subject = $2 AND m.digest > $3
ORDER BY m.digest LIMIT $4`,
	ReferrersOfType: `SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations
FROM manifests m
JOIN repositories r ON r.id = m.repo_id
WHERE r.name = $1 AND m.subject = $2 AND m.digest > $3 AND m.artifact_type = $4
ORDER BY m.digest LIMIT $5`,

	// Uploads.
	CreateUpload: `INSERT INTO uploads (id, repo, byte_offset, state, created, updated, client)
VALUES ($1, $2, $3, $4, $5, $6, $7)`,
	// Counts stop at the cap ($2): an index range scan of at most that
	// many rows (uploads_repo, uploads_client).
	CountRepoUploads:   `SELECT COUNT(*) FROM (SELECT 1 FROM uploads WHERE repo = $1 LIMIT $2) s`,
	CountClientUploads: `SELECT COUNT(*) FROM (SELECT 1 FROM uploads WHERE client = $1 AND client <> '' LIMIT $2) s`,
	GetUpload:          `SELECT byte_offset, state, created, updated, client FROM uploads WHERE id = $1 AND repo = $2`,
	UpdateUpload: `UPDATE uploads SET byte_offset = $1, state = $2, updated = $3
WHERE id = $4 AND byte_offset = $5`,
	UploadExists: `SELECT 1 FROM uploads WHERE id = $1`,
	DeleteUpload: `DELETE FROM uploads WHERE id = $1`,

	// Garbage collection and fsck (gc.go). Listings are keyset-paged.
	UntaggedManifests: `SELECT r.name, m.digest, m.subject, m.pushed,
    EXISTS (SELECT 1 FROM manifests s WHERE s.repo_id = m.repo_id AND s.digest = m.subject)
FROM manifests m
JOIN repositories r ON r.id = m.repo_id
WHERE (r.name, m.digest) > ($1, $2)
  AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)
  AND NOT EXISTS (SELECT 1 FROM manifest_refs f
                  WHERE f.repo_id = m.repo_id AND f.ref_digest = m.digest AND f.kind = 2)
ORDER BY r.name, m.digest LIMIT $3`,
	SweepManifestFacts: `SELECT m.pushed, m.subject,
    EXISTS (SELECT 1 FROM manifests s WHERE s.repo_id = m.repo_id AND s.digest = m.subject),
    EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest),
    EXISTS (SELECT 1 FROM manifest_refs f
            WHERE f.repo_id = m.repo_id AND f.ref_digest = m.digest AND f.kind = 2)
FROM manifests m
WHERE m.repo_id = $1 AND m.digest = $2`,
	// UnreferencedLinks walks one repository at a time (qNextRepo), each
	// by blob_links' key, so a page costs the links it passes over and no
	// more. (A row-value cursor over the join, with the created index,
	// sorted every candidate for every page: quadratic in a store's links.)
	NextRepo: `SELECT id, name FROM repositories WHERE name > $1 ORDER BY name LIMIT 1`,
	UnreferencedLinks: `SELECT l.digest
FROM blob_links l
WHERE l.repo_id = $1 AND l.digest > $2 AND l.created < $3
  AND NOT EXISTS (SELECT 1 FROM manifest_refs f WHERE f.ref_digest = l.digest AND f.repo_id = l.repo_id)
ORDER BY l.digest LIMIT $4`,
	// The batch statements take their keys as one JSON array ($1), read
	// with jsonb_array_elements, so each is one statement whatever the batch
	// size.
	SweepLinks: `DELETE FROM blob_links
WHERE (repo_id, digest) IN (
        SELECT r.id, k ->> 1
        FROM jsonb_array_elements($1::jsonb) k JOIN repositories r ON r.name = k ->> 0)
  AND created < $2
  AND NOT EXISTS (SELECT 1 FROM manifest_refs f WHERE f.ref_digest = blob_links.digest AND f.repo_id = blob_links.repo_id)`,
	UnlinkedBlobs: `SELECT b.digest, b.size, b.deleting, b.claim_expires
FROM blobs b
WHERE b.digest > $1
  AND (b.deleting = 1 OR (b.created < $2
       AND NOT EXISTS (SELECT 1 FROM blob_links l WHERE l.digest = b.digest)
       AND NOT EXISTS (SELECT 1 FROM manifest_refs f WHERE f.ref_digest = b.digest)))
ORDER BY b.digest LIMIT $3`,
	// ClaimBlobs ($1: [[digest, size], …]; $3: the run's token; $4: its
	// lease's end; $5: its time now): tombstones for the blobs with no row,
	// then the rows with no link, no reference and older than $2 become
	// the run's tombstones, and so do the batch's tombstones whose lease
	// ended (a crashed run's); then the batch's tombstones holding $3 are
	// the claimed set. Each row's condition is re-checked by the UPDATE
	// that takes it (on PostgreSQL the row lock orders two claimants: the
	// second re-reads the row and finds it taken).
	InsertTombstones: `INSERT INTO blobs (digest, size, created, deleting, claim_token, claim_expires)
SELECT k ->> 0, (k ->> 1)::bigint, $2, 1, $3, $4 FROM jsonb_array_elements($1::jsonb) k
ON CONFLICT (digest) DO NOTHING`,
	MarkDeleting: `UPDATE blobs SET deleting = 1, claim_token = $3, claim_expires = $4
WHERE digest IN (SELECT k ->> 0 FROM jsonb_array_elements($1::jsonb) k)
  AND ((deleting = 0 AND created < $2
        AND NOT EXISTS (SELECT 1 FROM blob_links l WHERE l.digest = blobs.digest)
        AND NOT EXISTS (SELECT 1 FROM manifest_refs f WHERE f.ref_digest = blobs.digest))
    OR (deleting = 1 AND (claim_token = $3 OR claim_expires < $5)))`,
	Claimed: `SELECT digest, size, claim_expires FROM blobs
WHERE digest IN (SELECT k ->> 0 FROM jsonb_array_elements($1::jsonb) k)
  AND deleting = 1 AND claim_token = $2
ORDER BY digest`,
	DropBlobs: `DELETE FROM blobs
WHERE digest IN (SELECT jsonb_array_elements_text($1::jsonb)) AND deleting = 1 AND claim_token = $2`,
	BlobRecord:  `SELECT size, deleting, claim_expires FROM blobs WHERE digest = $1`,
	BlobRecords: `SELECT digest, size, deleting, claim_expires FROM blobs WHERE digest > $1 ORDER BY digest LIMIT $2`,
	Links: `SELECT r.name, l.digest
FROM blob_links l
JOIN repositories r ON r.id = l.repo_id
WHERE (r.name, l.digest) > ($1, $2)
ORDER BY r.name, l.digest LIMIT $3`,
	BlobRefs: `SELECT r.name, f.manifest_digest, f.ref_digest
FROM manifest_refs f
JOIN repositories r ON r.id = f.repo_id
WHERE f.kind = 1 AND (f.ref_digest, r.name, f.manifest_digest) > ($1, $2, $3)
GROUP BY f.ref_digest, r.name, f.manifest_digest
ORDER BY f.ref_digest, r.name, f.manifest_digest LIMIT $4`,
	ExpiredUploads: `SELECT id FROM uploads WHERE updated < $1 AND id > $2 ORDER BY id LIMIT $3`,
	ExpireUpload:   `DELETE FROM uploads WHERE id = $1 AND updated < $2`,

	// queries are every statement of the store, in this dialect.
}

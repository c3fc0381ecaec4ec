package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// The methods in this file serve the web catalogue and search (web.Catalog).
// Listings are keyset-paged like gc's, so a caller building its view of the
// whole store holds neither a read transaction nor every row at once.

// Catalogue queries; prepared on the read pool (readQueries). The Flatpak
// ref label's JSON path is a parameter.
const (
	qCatalogTags = `SELECT r.name, t.name, t.digest, t.updated,
    m.media_type, m.artifact_type, m.os, m.architecture, m.variant, m.total_size, m.created, m.pushed,
    COALESCE(json_extract(m.labels, $4), '')
FROM tags t
JOIN repositories r ON r.id = t.repo_id
JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest
WHERE (r.name, t.name) > ($1, $2)
ORDER BY r.name, t.name LIMIT $3`
	qCatalogChildren = `SELECT r.name, f.manifest_digest, f.ord, f.ref_digest, f.media_type, f.size, f.platform,
    c.digest IS NOT NULL, COALESCE(c.os, ''), COALESCE(c.architecture, ''), COALESCE(c.variant, ''),
    COALESCE(c.total_size, 0), COALESCE(json_extract(c.labels, $5), '')
FROM manifest_refs f
JOIN repositories r ON r.id = f.repo_id
LEFT JOIN manifests c ON c.repo_id = f.repo_id AND c.digest = f.ref_digest
WHERE f.kind = 2 AND (r.name, f.manifest_digest, f.ord) > ($1, $2, $3)
  AND EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = f.repo_id AND t.digest = f.manifest_digest)
ORDER BY r.name, f.manifest_digest, f.ord LIMIT $4`
)

// CatalogVersion returns a token that changes whenever a tag or manifest is
// added, moved or removed, so a cached view of the catalogue can be kept
// until it does: the index generation. Tokens are only compared for
// equality.
func (s *Store) CatalogVersion(ctx context.Context) (string, error) {
	gen, err := s.IndexGeneration(ctx, meta.ScopeAll)
	if err != nil {
		return "", fmt.Errorf("sqlite: catalog version: %w", err)
	}
	return strconv.FormatInt(gen, 10), nil
}

// CatalogTags lists tags with the facts of their manifests, ordered by
// (repo, tag) in byte order, strictly after the cursor, at most n of them
// (n < 0: no limit). The result is never nil.
func (s *Store) CatalogTags(ctx context.Context, after meta.TagKey, n int) ([]meta.CatalogTag, error) {
	out := []meta.CatalogTag{}
	if n == 0 {
		return out, nil
	}
	rows, err := s.r.query(ctx, qCatalogTags, after.Repo, after.Tag, limit(n), labelPath(meta.FlatpakRefLabel))
	if err != nil {
		return nil, fmt.Errorf("sqlite: catalog tags: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			t               meta.CatalogTag
			d               string
			updated, pushed int64
			created         sql.NullInt64
		)
		if err := rows.Scan(&t.Repo, &t.Tag, &d, &updated, &t.MediaType, &t.ArtifactType,
			&t.OS, &t.Architecture, &t.Variant, &t.TotalSize, &created, &pushed, &t.FlatpakRef); err != nil {
			return nil, fmt.Errorf("sqlite: catalog tags: %w", err)
		}
		t.Digest = digest.Digest(d)
		t.Updated, t.Pushed, t.Created = fromNanos(updated), fromNanos(pushed), fromNullNanos(created)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: catalog tags: %w", err)
	}
	return out, nil
}

// CatalogChildren lists the child descriptors of tagged indexes, ordered
// by (repo, index digest, position in the index), strictly after the
// cursor, at most n of them (n < 0: no limit). The result is never nil.
func (s *Store) CatalogChildren(ctx context.Context, after meta.ChildKey, n int) ([]meta.CatalogChild, error) {
	out := []meta.CatalogChild{}
	if n == 0 {
		return out, nil
	}
	rows, err := s.r.query(ctx, qCatalogChildren, after.Repo, string(after.Index), after.Ord, limit(n), labelPath(meta.FlatpakRefLabel))
	if err != nil {
		return nil, fmt.Errorf("sqlite: catalog children: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			c         meta.CatalogChild
			index, cd string
		)
		if err := rows.Scan(&c.Repo, &index, &c.Ord, &cd, &c.MediaType, &c.Size, &c.Platform,
			&c.Stored, &c.OS, &c.Architecture, &c.Variant, &c.TotalSize, &c.FlatpakRef); err != nil {
			return nil, fmt.Errorf("sqlite: catalog children: %w", err)
		}
		c.Index, c.Digest = digest.Digest(index), digest.Digest(cd)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: catalog children: %w", err)
	}
	return out, nil
}

package sqlstore

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

// CatalogVersion returns a token that changes whenever a tag or manifest is
// added, moved or removed, so a cached view of the catalogue can be kept
// until it does: the index generation. Tokens are only compared for
// equality.
func (s *Store) CatalogVersion(ctx context.Context) (string, error) {
	gen, err := s.IndexGeneration(ctx, meta.ScopeAll)
	if err != nil {
		return "", fmt.Errorf("%s: catalog version: %w", s.name, err)
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
	rows, err := s.r.Query(ctx, s.q.CatalogTags, after.Repo, after.Tag, limit(n), s.q.Label(meta.FlatpakRefLabel))
	if err != nil {
		return nil, fmt.Errorf("%s: catalog tags: %w", s.name, err)
	}
	return scanCatalogTags(s.name, rows)
}

func scanCatalogTags(name string, rows *sql.Rows) ([]meta.CatalogTag, error) {
	defer rows.Close()
	out := []meta.CatalogTag{}
	for rows.Next() {
		var (
			t               meta.CatalogTag
			d               string
			updated, pushed int64
			created         sql.NullInt64
		)
		if err := rows.Scan(&t.Repo, &t.Tag, &d, &updated, &t.MediaType, &t.ArtifactType,
			&t.OS, &t.Architecture, &t.Variant, &t.TotalSize, &created, &pushed, &t.FlatpakRef); err != nil {
			return nil, fmt.Errorf("%s: catalog tags: %w", name, err)
		}
		t.Digest = digest.Digest(d)
		t.Updated, t.Pushed, t.Created = fromNanos(updated), fromNanos(pushed), fromNullNanos(created)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: catalog tags: %w", name, err)
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
	rows, err := s.r.Query(ctx, s.q.CatalogChildren, after.Repo, string(after.Index), after.Ord, limit(n), s.q.Label(meta.FlatpakRefLabel))
	if err != nil {
		return nil, fmt.Errorf("%s: catalog children: %w", s.name, err)
	}
	return scanCatalogChildren(s.name, rows)
}

func scanCatalogChildren(name string, rows *sql.Rows) ([]meta.CatalogChild, error) {
	defer rows.Close()
	out := []meta.CatalogChild{}
	for rows.Next() {
		var (
			c         meta.CatalogChild
			index, cd string
		)
		if err := rows.Scan(&c.Repo, &index, &c.Ord, &cd, &c.MediaType, &c.Size, &c.Platform,
			&c.Stored, &c.OS, &c.Architecture, &c.Variant, &c.TotalSize, &c.FlatpakRef); err != nil {
			return nil, fmt.Errorf("%s: catalog children: %w", name, err)
		}
		c.Index, c.Digest = digest.Digest(index), digest.Digest(cd)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: catalog children: %w", name, err)
	}
	return out, nil
}

// CatalogRepo lists one repository's rows of CatalogTags and
// CatalogChildren, in their order: what a catalogue re-reads when a change
// touched the repository. Both come from one read transaction, so they
// agree. The results are never nil.
func (s *Store) CatalogRepo(ctx context.Context, repo string) ([]meta.CatalogTag, []meta.CatalogChild, error) {
	tx, err := s.snapshot(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: catalog repository %s: %w", s.name, repo, err)
	}
	defer tx.Rollback()
	rows, err := tx.Query(ctx, s.q.CatalogRepoTags, repo, s.q.Label(meta.FlatpakRefLabel))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: catalog repository %s: %w", s.name, repo, err)
	}
	tags, err := scanCatalogTags(s.name, rows)
	if err != nil {
		return nil, nil, err
	}
	rows, err = tx.Query(ctx, s.q.CatalogRepoChildren, repo, s.q.Label(meta.FlatpakRefLabel))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: catalog repository %s: %w", s.name, repo, err)
	}
	children, err := scanCatalogChildren(s.name, rows)
	if err != nil {
		return nil, nil, err
	}
	return tags, children, nil
}

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// Tags implements meta.Lister. n < 0 means no limit; the result is never
// nil.
func (s *Store) Tags(ctx context.Context, repo, last string, n int) ([]string, error) {
	var repoID int64
	err := s.r.queryRow(ctx, qRepoID, repo).Scan(&repoID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("tags of %s: %w", repo, meta.ErrRepoNotFound)
	case err != nil:
		return nil, fmt.Errorf("sqlite: tags of %s: %w", repo, err)
	}
	tags, err := s.names(ctx, n, qTags, repoID, last, limit(n))
	if err != nil {
		return nil, fmt.Errorf("sqlite: tags of %s: %w", repo, err)
	}
	return tags, nil
}

// Repositories implements meta.Lister. n < 0 means no limit; the result is
// never nil.
func (s *Store) Repositories(ctx context.Context, last string, n int) ([]string, error) {
	repos, err := s.names(ctx, n, qRepositories, last, limit(n))
	if err != nil {
		return nil, fmt.Errorf("sqlite: repositories: %w", err)
	}
	return repos, nil
}

// names runs a query returning one text column.
func (s *Store) names(ctx context.Context, n int, query string, args ...any) ([]string, error) {
	out := make([]string, 0, min(max(n, 0), 1000))
	if n == 0 {
		return out, nil
	}
	rows, err := s.r.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, rows.Err()
}

// Referrers implements meta.ReferrersReader. An unknown repository or
// subject has no referrers; the result is never nil.
func (s *Store) Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string, after digest.Digest, n int) ([]meta.Descriptor, error) {
	out := []meta.Descriptor{}
	if d == "" || n == 0 {
		return out, nil
	}
	var (
		rows *sql.Rows
		err  error
	)
	if artifactType == "" {
		rows, err = s.r.query(ctx, qReferrers, repo, string(d), string(after), n)
	} else {
		rows, err = s.r.query(ctx, qReferrersOfType, repo, string(d), string(after), artifactType, n)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: referrers of %s@%s: %w", repo, d, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			desc        meta.Descriptor
			dgst        string
			annotations sql.NullString
		)
		if err := rows.Scan(&dgst, &desc.MediaType, &desc.Size, &desc.ArtifactType, &annotations); err != nil {
			return nil, fmt.Errorf("sqlite: referrers of %s@%s: %w", repo, d, err)
		}
		desc.Digest = digest.Digest(dgst)
		if desc.Annotations, err = decodeMap(annotations); err != nil {
			return nil, fmt.Errorf("sqlite: referrers of %s@%s: %s annotations: %w", repo, d, dgst, err)
		}
		out = append(out, desc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: referrers of %s@%s: %w", repo, d, err)
	}
	return out, nil
}

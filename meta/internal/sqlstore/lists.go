package sqlstore

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
	err := s.r.QueryRow(ctx, s.q.RepoID, repo).Scan(&repoID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("tags of %s: %w", repo, meta.ErrRepoNotFound)
	case err != nil:
		return nil, fmt.Errorf("%s: tags of %s: %w", s.name, repo, err)
	}
	tags, err := s.names(ctx, n, s.q.Tags, repoID, last, limit(n))
	if err != nil {
		return nil, fmt.Errorf("%s: tags of %s: %w", s.name, repo, err)
	}
	return tags, nil
}

// Repositories implements meta.Lister. n < 0 means no limit; the result is
// never nil.
func (s *Store) Repositories(ctx context.Context, last string, n int) ([]string, error) {
	repos, err := s.names(ctx, n, s.q.Repositories, last, limit(n))
	if err != nil {
		return nil, fmt.Errorf("%s: repositories: %w", s.name, err)
	}
	return repos, nil
}

// names runs a query returning one text column.
func (s *Store) names(ctx context.Context, n int, query string, args ...any) ([]string, error) {
	out := make([]string, 0, min(max(n, 0), 1000))
	if n == 0 {
		return out, nil
	}
	rows, err := s.r.Query(ctx, query, args...)
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
	err := s.EachReferrer(ctx, repo, d, artifactType, after, n, func(desc meta.Descriptor) error {
		out = append(out, desc)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// referrerBatchRows and referrerBatchBytes bound one batch of EachReferrer:
// the rows read before the query is closed and fn runs. fn usually writes
// to a client, so no read transaction stays open while a slow client
// reads, and at most about referrerBatchBytes of annotations (plus one
// row's) are held at once.
const (
	referrerBatchRows  = 64
	referrerBatchBytes = 256 << 10
)

// EachReferrer implements meta.ReferrersReader. It reads in batches, each a
// keyset-paged query closed before fn sees its rows.
func (s *Store) EachReferrer(ctx context.Context, repo string, d digest.Digest, artifactType string, after digest.Digest, n int, fn func(meta.Descriptor) error) error {
	if d == "" || n == 0 {
		return nil
	}
	remaining := limit(n)
	cursor := string(after)
	for remaining > 0 {
		batch, err := s.referrerBatch(ctx, repo, d, artifactType, cursor, min(remaining, referrerBatchRows))
		if err != nil {
			return err
		}
		for _, desc := range batch {
			if err := fn(desc); err != nil {
				return err
			}
		}
		if len(batch) == 0 || int64(len(batch)) >= remaining {
			return nil
		}
		remaining -= int64(len(batch))
		cursor = string(batch[len(batch)-1].Digest)
	}
	return nil
}

// referrerBatch reads at most n referrers after cursor, stopping early once
// their annotations pass referrerBatchBytes.
func (s *Store) referrerBatch(ctx context.Context, repo string, d digest.Digest, artifactType, cursor string, n int64) ([]meta.Descriptor, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if artifactType == "" {
		rows, err = s.r.Query(ctx, s.q.Referrers, repo, string(d), cursor, n)
	} else {
		rows, err = s.r.Query(ctx, s.q.ReferrersOfType, repo, string(d), cursor, artifactType, n)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: referrers of %s@%s: %w", s.name, repo, d, err)
	}
	defer rows.Close()
	var out []meta.Descriptor
	held := 0
	for held < referrerBatchBytes && rows.Next() {
		var (
			desc        meta.Descriptor
			dgst        string
			annotations sql.NullString
		)
		if err := rows.Scan(&dgst, &desc.MediaType, &desc.Size, &desc.ArtifactType, &annotations); err != nil {
			return nil, fmt.Errorf("%s: referrers of %s@%s: %w", s.name, repo, d, err)
		}
		desc.Digest = digest.Digest(dgst)
		if desc.Annotations, err = decodeMap(annotations); err != nil {
			return nil, fmt.Errorf("%s: referrers of %s@%s: %s annotations: %w", s.name, repo, d, dgst, err)
		}
		held += len(annotations.String)
		out = append(out, desc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: referrers of %s@%s: %w", s.name, repo, d, err)
	}
	return out, nil
}

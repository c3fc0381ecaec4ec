package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// LinkBlob implements meta.BlobLinker. It records the blob globally (first
// size and time win) and links it into repo, creating the repository. A
// blob whose row is a gc tombstone is not linked: meta.ErrBlobDeleting.
func (s *Store) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	err := s.write(ctx, func(tx txn) error {
		return linkBlob(ctx, tx, repo, d, size, now())
	})
	if errors.Is(err, meta.ErrBlobDeleting) {
		return fmt.Errorf("link blob %s into %s: %w", d, repo, err)
	}
	if err != nil {
		return fmt.Errorf("postgres: link blob %s into %s: %w", d, repo, err)
	}
	return nil
}

// linkBlob is LinkBlob's transaction.
func linkBlob(ctx context.Context, tx txn, repo string, d digest.Digest, size, t int64) error {
	id, err := ensureRepo(ctx, tx, repo, t)
	if err != nil {
		return err
	}
	if _, err := tx.exec(ctx, qInsertBlob, string(d), size, t); err != nil {
		return err
	}
	var deleting bool
	if err := tx.queryRow(ctx, qBlobDeleting, string(d)).Scan(&deleting); err != nil {
		return err
	}
	if deleting {
		return meta.ErrBlobDeleting
	}
	_, err = tx.exec(ctx, qInsertLink, id, string(d), t)
	return err
}

// BlobLink implements meta.BlobLinker.
func (s *Store) BlobLink(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	var size int64
	err := s.r.queryRow(ctx, qBlobLink, repo, string(d)).Scan(&size)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("blob %s in %s: %w", d, repo, meta.ErrBlobNotFound)
	case err != nil:
		return 0, fmt.Errorf("postgres: blob %s in %s: %w", d, repo, err)
	}
	return size, nil
}

// UnlinkBlob implements meta.BlobLinker. The global blob row stays for GC.
// The link's removal and its blob.delete event are one transaction.
func (s *Store) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	err := s.write(ctx, func(tx txn) error {
		n, err := rowsAffected(tx.exec(ctx, qDeleteLink, repo, string(d)))
		if err != nil {
			return err
		}
		if n == 0 {
			return sql.ErrNoRows
		}
		return insertEvent(ctx, tx, meta.EventBlobDelete, repo, meta.BlobDeletePayload{Digest: d}, now())
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("unlink blob %s from %s: %w", d, repo, meta.ErrBlobNotFound)
	case err != nil:
		return fmt.Errorf("postgres: unlink blob %s from %s: %w", d, repo, err)
	}
	return nil
}

// BlobKnown implements meta.BlobLinker.
func (s *Store) BlobKnown(ctx context.Context, d digest.Digest) (int64, error) {
	var size int64
	err := s.r.queryRow(ctx, qBlobKnown, string(d)).Scan(&size)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("blob %s: %w", d, meta.ErrBlobNotFound)
	case err != nil:
		return 0, fmt.Errorf("postgres: blob %s: %w", d, err)
	}
	return size, nil
}

// LinkingRepositories implements meta.BlobLinker.
func (s *Store) LinkingRepositories(ctx context.Context, d digest.Digest, after string, n int) ([]string, error) {
	repos, err := s.names(ctx, n, qLinkingRepos, string(d), after, limit(n))
	if err != nil {
		return nil, fmt.Errorf("postgres: repositories linking %s: %w", d, err)
	}
	return repos, nil
}

const (
	qLinkCreated = `SELECT l.created FROM blob_links l JOIN repositories r ON r.id = l.repo_id
WHERE r.name = $1 AND l.digest = $2`
	qTouchLink = `UPDATE blob_links SET created = $3
WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND digest = $2 AND created < $4`
)

// RefreshLink implements meta.BlobLinker: a read, and a write only when
// the link is older than olderThan.
func (s *Store) RefreshLink(ctx context.Context, repo string, d digest.Digest, olderThan time.Time) error {
	var created int64
	err := s.r.queryRow(ctx, qLinkCreated, repo, string(d)).Scan(&created)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("blob %s in %s: %w", d, repo, meta.ErrBlobNotFound)
	case err != nil:
		return fmt.Errorf("postgres: refresh link %s in %s: %w", d, repo, err)
	}
	cut := olderThan.UnixNano()
	if created >= cut {
		return nil
	}
	err = s.write(ctx, func(tx txn) error {
		_, err := tx.exec(ctx, qTouchLink, repo, string(d), now(), cut)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: refresh link %s in %s: %w", d, repo, err)
	}
	return nil
}

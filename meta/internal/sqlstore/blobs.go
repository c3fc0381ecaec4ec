package sqlstore

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
	err := s.write(ctx, func(tx *Tx) error {
		return s.linkBlob(ctx, tx, repo, d, size, s.nowNanos())
	})
	if errors.Is(err, meta.ErrBlobDeleting) {
		return fmt.Errorf("link blob %s into %s: %w", d, repo, err)
	}
	if err != nil {
		return fmt.Errorf("%s: link blob %s into %s: %w", s.name, d, repo, err)
	}
	return nil
}

// FinishUpload implements meta.UploadStore: LinkBlob and the session's
// removal in one transaction.
func (s *Store) FinishUpload(ctx context.Context, id, repo string, d digest.Digest, size int64) error {
	err := s.write(ctx, func(tx *Tx) error {
		if err := s.linkBlob(ctx, tx, repo, d, size, s.nowNanos()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, s.q.DeleteUpload, id)
		return err
	})
	if errors.Is(err, meta.ErrBlobDeleting) {
		return fmt.Errorf("finish upload %s: link blob %s into %s: %w", id, d, repo, err)
	}
	if err != nil {
		return fmt.Errorf("%s: finish upload %s: link blob %s into %s: %w", s.name, id, d, repo, err)
	}
	return nil
}

// linkBlob is LinkBlob's transaction.
func (s *Store) linkBlob(ctx context.Context, tx *Tx, repo string, d digest.Digest, size, t int64) error {
	id, err := s.ensureRepo(ctx, tx, repo, t)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, s.q.InsertBlob, string(d), size, t); err != nil {
		return err
	}
	var deleting bool
	if err := tx.QueryRow(ctx, s.q.BlobDeleting, string(d)).Scan(&deleting); err != nil {
		return err
	}
	if deleting {
		return meta.ErrBlobDeleting
	}
	_, err = tx.Exec(ctx, s.q.InsertLink, id, string(d), t)
	return err
}

// BlobLink implements meta.BlobLinker.
func (s *Store) BlobLink(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	var size int64
	err := s.r.QueryRow(ctx, s.q.BlobLink, repo, string(d)).Scan(&size)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("blob %s in %s: %w", d, repo, meta.ErrBlobNotFound)
	case err != nil:
		return 0, fmt.Errorf("%s: blob %s in %s: %w", s.name, d, repo, err)
	}
	return size, nil
}

// UnlinkBlob implements meta.BlobLinker. The global blob row stays for GC.
// The link's removal and its blob.delete event are one transaction.
func (s *Store) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	err := s.write(ctx, func(tx *Tx) error {
		n, err := rowsAffected(tx.Exec(ctx, s.q.DeleteLink, repo, string(d)))
		if err != nil {
			return err
		}
		if n == 0 {
			return sql.ErrNoRows
		}
		return s.insertEvent(ctx, tx, meta.EventBlobDelete, repo, meta.BlobDeletePayload{Digest: d}, s.nowNanos())
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("unlink blob %s from %s: %w", d, repo, meta.ErrBlobNotFound)
	case err != nil:
		return fmt.Errorf("%s: unlink blob %s from %s: %w", s.name, d, repo, err)
	}
	return nil
}

// BlobKnown implements meta.BlobLinker.
func (s *Store) BlobKnown(ctx context.Context, d digest.Digest) (int64, error) {
	var size int64
	err := s.r.QueryRow(ctx, s.q.BlobKnown, string(d)).Scan(&size)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("blob %s: %w", d, meta.ErrBlobNotFound)
	case err != nil:
		return 0, fmt.Errorf("%s: blob %s: %w", s.name, d, err)
	}
	return size, nil
}

// LinkingRepositories implements meta.BlobLinker.
func (s *Store) LinkingRepositories(ctx context.Context, d digest.Digest, after string, n int) ([]string, error) {
	repos, err := s.names(ctx, n, s.q.LinkingRepos, string(d), after, limit(n))
	if err != nil {
		return nil, fmt.Errorf("%s: repositories linking %s: %w", s.name, d, err)
	}
	return repos, nil
}

// RefreshLink implements meta.BlobLinker: a read, and a write only when
// the link is older than olderThan.
func (s *Store) RefreshLink(ctx context.Context, repo string, d digest.Digest, olderThan time.Time) error {
	var created int64
	err := s.r.QueryRow(ctx, s.q.LinkCreated, repo, string(d)).Scan(&created)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("blob %s in %s: %w", d, repo, meta.ErrBlobNotFound)
	case err != nil:
		return fmt.Errorf("%s: refresh link %s in %s: %w", s.name, d, repo, err)
	}
	cut := olderThan.UnixNano()
	if created >= cut {
		return nil
	}
	err = s.write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, s.q.TouchLink, repo, string(d), s.nowNanos(), cut)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: refresh link %s in %s: %w", s.name, d, repo, err)
	}
	return nil
}

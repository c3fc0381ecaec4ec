package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/berth-dev/berth/meta"
)

// CreateUpload implements meta.UploadStore. Zero Created and Updated are set
// to now. An id already in use is an error. The repository is not created.
func (s *Store) CreateUpload(ctx context.Context, u meta.Upload) error {
	return s.CreateUploadCapped(ctx, u, meta.UploadCaps{})
}

// CreateUploadCapped implements meta.UploadStore. The counts and the insert
// run in one write transaction: SQLite serialises writers, so two creators
// cannot both see room for one more.
func (s *Store) CreateUploadCapped(ctx context.Context, u meta.Upload, caps meta.UploadCaps) error {
	if u.ID == "" || u.Repo == "" {
		return fmt.Errorf("%s: create upload: id and repository are required", s.name)
	}
	t := s.nowNanos()
	created, updated := nullTime(u.Created), nullTime(u.Updated)
	if created == nil {
		created = t
	}
	if updated == nil {
		updated = created
	}
	err := s.write(ctx, func(tx *Tx) error {
		if caps.PerRepository > 0 {
			var n int
			if err := tx.QueryRow(ctx, s.q.CountRepoUploads, u.Repo, caps.PerRepository).Scan(&n); err != nil {
				return err
			}
			if n >= caps.PerRepository {
				return &meta.TooManyUploadsError{Of: "repository", Limit: caps.PerRepository}
			}
		}
		if caps.PerClient > 0 && u.Client != "" {
			var n int
			if err := tx.QueryRow(ctx, s.q.CountClientUploads, u.Client, caps.PerClient).Scan(&n); err != nil {
				return err
			}
			if n >= caps.PerClient {
				return &meta.TooManyUploadsError{Of: "client", Limit: caps.PerClient}
			}
		}
		_, err := tx.Exec(ctx, s.q.CreateUpload, u.ID, u.Repo, u.Offset, u.State, created, updated, u.Client)
		return err
	})
	if errors.Is(err, meta.ErrTooManyUploads) {
		return fmt.Errorf("create upload in %s: %w", u.Repo, err)
	}
	if err != nil {
		return fmt.Errorf("%s: create upload %s in %s: %w", s.name, u.ID, u.Repo, err)
	}
	return nil
}

// GetUpload implements meta.UploadStore.
func (s *Store) GetUpload(ctx context.Context, repo, id string) (meta.Upload, error) {
	u := meta.Upload{ID: id, Repo: repo}
	var created, updated int64
	err := s.r.QueryRow(ctx, s.q.GetUpload, id, repo).Scan(&u.Offset, &u.State, &created, &updated, &u.Client)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return meta.Upload{}, fmt.Errorf("upload %s in %s: %w", id, repo, meta.ErrUploadNotFound)
	case err != nil:
		return meta.Upload{}, fmt.Errorf("%s: get upload %s in %s: %w", s.name, id, repo, err)
	}
	u.Created, u.Updated = fromNanos(created), fromNanos(updated)
	return u, nil
}

// UpdateUpload implements meta.UploadStore.
func (s *Store) UpdateUpload(ctx context.Context, id string, prevOffset, offset int64, state []byte) error {
	err := s.write(ctx, func(tx *Tx) error {
		n, err := rowsAffected(tx.Exec(ctx, s.q.UpdateUpload, offset, state, s.nowNanos(), id, prevOffset))
		if err != nil || n > 0 {
			return err
		}
		var one int
		if err := tx.QueryRow(ctx, s.q.UploadExists, id).Scan(&one); err != nil {
			return err // sql.ErrNoRows: no such upload
		}
		return meta.ErrUploadConflict
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("update upload %s: %w", id, meta.ErrUploadNotFound)
	case errors.Is(err, meta.ErrUploadConflict):
		return fmt.Errorf("update upload %s from offset %d: %w", id, prevOffset, err)
	case err != nil:
		return fmt.Errorf("%s: update upload %s: %w", s.name, id, err)
	}
	return nil
}

// DeleteUpload implements meta.UploadStore.
func (s *Store) DeleteUpload(ctx context.Context, id string) error {
	var n int64
	err := s.write(ctx, func(tx *Tx) error {
		var err error
		n, err = rowsAffected(tx.Exec(ctx, s.q.DeleteUpload, id))
		return err
	})
	switch {
	case err != nil:
		return fmt.Errorf("%s: delete upload %s: %w", s.name, id, err)
	case n == 0:
		return fmt.Errorf("delete upload %s: %w", id, meta.ErrUploadNotFound)
	}
	return nil
}

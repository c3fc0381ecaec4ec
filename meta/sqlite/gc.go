package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// The methods in this file serve gc and fsck. Listings are keyset-paged
// (strictly after a cursor, at most n rows) so neither holds a read
// transaction open nor the whole store in memory. Every deletion re-checks
// its condition in the same write transaction; SQLite's single writer
// serialises it against LinkBlob and PutManifest.

// nanos is t in unix nanoseconds, clamped to what int64 holds.
func nanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// UntaggedManifests lists manifests no tag and no index of their
// repository points at, ordered by (repo, digest), after the cursor.
func (s *Store) UntaggedManifests(ctx context.Context, after meta.ManifestKey, n int) ([]meta.UntaggedManifest, error) {
	rows, err := s.r.query(ctx, qUntaggedManifests, after.Repo, string(after.Digest), limit(n))
	if err != nil {
		return nil, fmt.Errorf("sqlite: untagged manifests: %w", err)
	}
	defer rows.Close()
	var out []meta.UntaggedManifest
	for rows.Next() {
		var (
			m          meta.UntaggedManifest
			d, subject string
			pushed     int64
		)
		if err := rows.Scan(&m.Repo, &d, &subject, &pushed, &m.SubjectExists); err != nil {
			return nil, fmt.Errorf("sqlite: untagged manifests: %w", err)
		}
		m.Digest, m.Subject, m.Pushed = digest.Digest(d), digest.Digest(subject), fromNanos(pushed)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: untagged manifests: %w", err)
	}
	return out, nil
}

// SweepManifest deletes the manifest if rule (see meta.ManifestSweep)
// still holds, checked in the deleting transaction, and reports whether it
// did. A manifest already gone is not an error (false).
func (s *Store) SweepManifest(ctx context.Context, key meta.ManifestKey, rule meta.ManifestSweep) (bool, error) {
	deleted := false
	err := s.write(ctx, func(tx txn) error {
		var repoID int64
		if err := tx.queryRow(ctx, qRepoID, key.Repo).Scan(&repoID); err != nil {
			return err
		}
		var (
			pushed                           int64
			subject                          string
			subjectExists, tagged, hasParent bool
		)
		if err := tx.queryRow(ctx, qSweepManifestFacts, repoID, string(key.Digest)).Scan(
			&pushed, &subject, &subjectExists, &tagged, &hasParent); err != nil {
			return err
		}
		if !sweepable(rule, pushed, subject != "", subjectExists, tagged, hasParent) {
			return nil
		}
		if _, err := tx.exec(ctx, qDeleteRefsOf, repoID, string(key.Digest)); err != nil {
			return err
		}
		n, err := rowsAffected(tx.exec(ctx, qDeleteManifest, repoID, string(key.Digest)))
		deleted = n > 0
		return err
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("sqlite: sweep manifest %s@%s: %w", key.Repo, key.Digest, err)
	}
	return deleted, nil
}

// sweepable applies meta.ManifestSweep.
func sweepable(rule meta.ManifestSweep, pushed int64, hasSubject, subjectExists, tagged, hasParent bool) bool {
	if tagged || hasParent {
		return false
	}
	if hasSubject && subjectExists {
		return false // keep referrers while their subject exists
	}
	if !rule.UntaggedBefore.IsZero() && pushed < nanos(rule.UntaggedBefore) {
		return true
	}
	return hasSubject && !rule.OrphanBefore.IsZero() && pushed < nanos(rule.OrphanBefore)
}

// UnreferencedLinks lists links made before before that no manifest of
// their repository references, ordered by (repo, digest), after the cursor.
func (s *Store) UnreferencedLinks(ctx context.Context, before time.Time, after meta.LinkKey, n int) ([]meta.LinkKey, error) {
	out, err := s.linkKeys(ctx, qUnreferencedLinks, after.Repo, string(after.Digest), nanos(before), limit(n))
	if err != nil {
		return nil, fmt.Errorf("sqlite: unreferenced links: %w", err)
	}
	return out, nil
}

// Links lists every link, ordered by (repo, digest), after the cursor.
func (s *Store) Links(ctx context.Context, after meta.LinkKey, n int) ([]meta.LinkKey, error) {
	out, err := s.linkKeys(ctx, qLinks, after.Repo, string(after.Digest), limit(n))
	if err != nil {
		return nil, fmt.Errorf("sqlite: links: %w", err)
	}
	return out, nil
}

func (s *Store) linkKeys(ctx context.Context, q string, args ...any) ([]meta.LinkKey, error) {
	rows, err := s.r.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []meta.LinkKey
	for rows.Next() {
		var k meta.LinkKey
		var d string
		if err := rows.Scan(&k.Repo, &d); err != nil {
			return nil, err
		}
		k.Digest = digest.Digest(d)
		out = append(out, k)
	}
	return out, rows.Err()
}

// SweepLink removes the link if it was made before before and no manifest
// of its repository references the blob, checked in the deleting
// statement, and reports whether it did.
func (s *Store) SweepLink(ctx context.Context, key meta.LinkKey, before time.Time) (bool, error) {
	n, err := rowsAffected(s.w.exec(ctx, qSweepLink, key.Repo, string(key.Digest), nanos(before)))
	if err != nil {
		return false, fmt.Errorf("sqlite: sweep link %s in %s: %w", key.Digest, key.Repo, err)
	}
	return n > 0, nil
}

// UnlinkedBlobs lists tombstones and the rows, recorded before before, of
// blobs with no link and no reference, ordered by digest, after the cursor.
func (s *Store) UnlinkedBlobs(ctx context.Context, before time.Time, after digest.Digest, n int) ([]meta.BlobRecord, error) {
	out, err := s.blobRecords(ctx, qUnlinkedBlobs, string(after), nanos(before), limit(n))
	if err != nil {
		return nil, fmt.Errorf("sqlite: unlinked blobs: %w", err)
	}
	return out, nil
}

// BlobRecords lists every blob row, ordered by digest, after the cursor.
func (s *Store) BlobRecords(ctx context.Context, after digest.Digest, n int) ([]meta.BlobRecord, error) {
	out, err := s.blobRecords(ctx, qBlobRecords, string(after), limit(n))
	if err != nil {
		return nil, fmt.Errorf("sqlite: blob records: %w", err)
	}
	return out, nil
}

func (s *Store) blobRecords(ctx context.Context, q string, args ...any) ([]meta.BlobRecord, error) {
	rows, err := s.r.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []meta.BlobRecord
	for rows.Next() {
		var b meta.BlobRecord
		var d string
		if err := rows.Scan(&d, &b.Size, &b.Deleting); err != nil {
			return nil, err
		}
		b.Digest = digest.Digest(d)
		out = append(out, b)
	}
	return out, rows.Err()
}

// BlobRecord returns the blob's row, or an error wrapping
// meta.ErrBlobNotFound if there is none.
func (s *Store) BlobRecord(ctx context.Context, d digest.Digest) (meta.BlobRecord, error) {
	b := meta.BlobRecord{Digest: d}
	err := s.r.queryRow(ctx, qBlobRecord, string(d)).Scan(&b.Size, &b.Deleting)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return meta.BlobRecord{}, fmt.Errorf("blob %s: no row: %w", d, meta.ErrBlobNotFound)
	case err != nil:
		return meta.BlobRecord{}, fmt.Errorf("sqlite: blob %s: %w", d, err)
	}
	return b, nil
}

// ClaimBlob makes the blob's row a tombstone, so that its bytes may be
// deleted, and reports whether the blob is claimed. In one transaction:
// a blob without a row gets a tombstone (size is recorded for reports); a
// tombstone stays one; a row recorded at or after before, or with a link
// or a reference, is left alone (false); any other row becomes a
// tombstone.
func (s *Store) ClaimBlob(ctx context.Context, d digest.Digest, size int64, before time.Time) (bool, error) {
	claimed := false
	err := s.write(ctx, func(tx txn) error {
		var (
			deleting, linked, referenced bool
			created                      int64
		)
		err := tx.queryRow(ctx, qBlobClaimFacts, string(d)).Scan(&deleting, &created, &linked, &referenced)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.exec(ctx, qInsertTombstone, string(d), size, now())
			claimed = err == nil
			return err
		case err != nil:
			return err
		case deleting:
			claimed = true
			return nil
		case linked || referenced || created >= nanos(before):
			return nil
		}
		_, err = tx.exec(ctx, qMarkDeleting, string(d))
		claimed = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: claim blob %s: %w", d, err)
	}
	return claimed, nil
}

// DropBlob removes the blob's tombstone (once its bytes are gone). A row
// that is not a tombstone, or none, is left alone.
func (s *Store) DropBlob(ctx context.Context, d digest.Digest) error {
	if _, err := s.w.exec(ctx, qDropBlob, string(d)); err != nil {
		return fmt.Errorf("sqlite: drop blob %s: %w", d, err)
	}
	return nil
}

// BlobRefs lists the RefBlob references of every manifest, ordered by
// (blob digest, repo, manifest digest), after the cursor.
func (s *Store) BlobRefs(ctx context.Context, after meta.BlobRef, n int) ([]meta.BlobRef, error) {
	rows, err := s.r.query(ctx, qBlobRefs, string(after.Digest), after.Manifest.Repo, string(after.Manifest.Digest), limit(n))
	if err != nil {
		return nil, fmt.Errorf("sqlite: blob references: %w", err)
	}
	defer rows.Close()
	var out []meta.BlobRef
	for rows.Next() {
		var r meta.BlobRef
		var md, d string
		if err := rows.Scan(&r.Manifest.Repo, &md, &d); err != nil {
			return nil, fmt.Errorf("sqlite: blob references: %w", err)
		}
		r.Manifest.Digest, r.Digest = digest.Digest(md), digest.Digest(d)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: blob references: %w", err)
	}
	return out, nil
}

// ExpiredUploads lists the ids of upload sessions last updated before
// before, in id order, after the cursor.
func (s *Store) ExpiredUploads(ctx context.Context, before time.Time, after string, n int) ([]string, error) {
	ids, err := s.names(ctx, n, qExpiredUploads, nanos(before), after, limit(n))
	if err != nil {
		return nil, fmt.Errorf("sqlite: expired uploads: %w", err)
	}
	return ids, nil
}

// ExpireUpload deletes the session if it was last updated before before,
// and reports whether it did.
func (s *Store) ExpireUpload(ctx context.Context, id string, before time.Time) (bool, error) {
	n, err := rowsAffected(s.w.exec(ctx, qExpireUpload, id, nanos(before)))
	if err != nil {
		return false, fmt.Errorf("sqlite: expire upload %s: %w", id, err)
	}
	return n > 0, nil
}

// UploadKnown reports whether a session with this id exists.
func (s *Store) UploadKnown(ctx context.Context, id string) (bool, error) {
	var one int
	err := s.r.queryRow(ctx, qUploadExists, id).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("sqlite: upload %s: %w", id, err)
	}
	return true, nil
}

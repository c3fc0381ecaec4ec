package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// The methods in this file serve gc and fsck. Listings are keyset-paged
// (strictly after a cursor, at most n rows) so neither holds a read
// transaction open nor the whole store in memory. Every deletion re-checks
// its condition in the same write transaction; SQLite's single writer
// serialises it against LinkBlob and PutManifest.

// UntaggedManifests lists manifests no tag and no index of their
// repository points at, ordered by (repo, digest), after the cursor.
func (s *Store) UntaggedManifests(ctx context.Context, after meta.ManifestKey, n int) ([]meta.UntaggedManifest, error) {
	rows, err := s.r.Query(ctx, s.q.UntaggedManifests, after.Repo, string(after.Digest), limit(n))
	if err != nil {
		return nil, fmt.Errorf("%s: untagged manifests: %w", s.name, err)
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
			return nil, fmt.Errorf("%s: untagged manifests: %w", s.name, err)
		}
		m.Digest, m.Subject, m.Pushed = digest.Digest(d), digest.Digest(subject), fromNanos(pushed)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: untagged manifests: %w", s.name, err)
	}
	return out, nil
}

// SweepManifests deletes, in one transaction, each manifest for which rule
// (see meta.ManifestSweep) still holds at that point of the transaction
// (deleting an index earlier in the batch frees its children later in
// it). It returns the keys it deleted, in the order given; a manifest
// already gone is not an error.
func (s *Store) SweepManifests(ctx context.Context, keys []meta.ManifestKey, rule meta.ManifestSweep) ([]meta.ManifestKey, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	var swept []meta.ManifestKey
	err := s.write(ctx, func(tx *Tx) error {
		swept = swept[:0]
		repoIDs := map[string]int64{}
		for _, key := range keys {
			repoID, ok := repoIDs[key.Repo]
			if !ok {
				err := tx.QueryRow(ctx, s.q.RepoID, key.Repo).Scan(&repoID)
				switch {
				case errors.Is(err, sql.ErrNoRows):
					repoID = -1
				case err != nil:
					return fmt.Errorf("repository %s: %w", key.Repo, err)
				}
				repoIDs[key.Repo] = repoID
			}
			if repoID < 0 {
				continue
			}
			ok, err := s.sweepManifest(ctx, tx, repoID, key.Digest, rule)
			if err != nil {
				return fmt.Errorf("%s@%s: %w", key.Repo, key.Digest, err)
			}
			if ok {
				swept = append(swept, key)
			}
		}
		return nil
	})
	if s.tags != nil && len(swept) > 0 {
		// A swept manifest had no tag (the rule checks it in the same
		// transaction), so no cached tag serves it: nothing to drop, but
		// reads in flight skip their store, as after any deleting write.
		s.tags.forget("", []string{})
	}
	if err != nil {
		return nil, fmt.Errorf("%s: sweep manifests: %w", s.name, err)
	}
	return swept, nil
}

// sweepManifest deletes the manifest in tx if rule holds for it, and
// reports whether it did.
func (s *Store) sweepManifest(ctx context.Context, tx *Tx, repoID int64, d digest.Digest, rule meta.ManifestSweep) (bool, error) {
	var (
		pushed                           int64
		subject                          string
		subjectExists, tagged, hasParent bool
	)
	err := tx.QueryRow(ctx, s.q.SweepManifestFacts, repoID, string(d)).Scan(
		&pushed, &subject, &subjectExists, &tagged, &hasParent)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, err
	}
	if !sweepable(rule, pushed, subject != "", subjectExists, tagged, hasParent) {
		return false, nil
	}
	if _, err := tx.Exec(ctx, s.q.DeleteRefsOf, repoID, string(d)); err != nil {
		return false, err
	}
	n, err := rowsAffected(tx.Exec(ctx, s.q.DeleteManifest, repoID, string(d)))
	return n > 0, err
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
	out, err := s.unreferencedLinks(ctx, nanos(before), after, limit(n))
	if err != nil {
		return nil, fmt.Errorf("%s: unreferenced links: %w", s.name, err)
	}
	return out, nil
}

// unreferencedLinks lists the rest of the cursor's repository, then the
// repositories after it, one at a time, until it has n links.
func (s *Store) unreferencedLinks(ctx context.Context, before int64, after meta.LinkKey, n int64) ([]meta.LinkKey, error) {
	var out []meta.LinkKey
	repo, from := after.Repo, string(after.Digest)
	var id int64
	err := s.r.QueryRow(ctx, s.q.RepoID, repo).Scan(&id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		id = -1 // no such repository (or none yet): start with the next
	case err != nil:
		return nil, err
	}
	for int64(len(out)) < n {
		if id >= 0 {
			rows, err := s.r.Query(ctx, s.q.UnreferencedLinks, id, from, before, n-int64(len(out)))
			if err != nil {
				return nil, err
			}
			for rows.Next() {
				var d string
				if err := rows.Scan(&d); err != nil {
					rows.Close()
					return nil, err
				}
				out = append(out, meta.LinkKey{Repo: repo, Digest: digest.Digest(d)})
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, err
			}
			if int64(len(out)) == n {
				break
			}
		}
		err := s.r.QueryRow(ctx, s.q.NextRepo, repo).Scan(&id, &repo)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return out, nil
		case err != nil:
			return nil, err
		}
		from = ""
	}
	return out, nil
}

// Links lists every link, ordered by (repo, digest), after the cursor.
func (s *Store) Links(ctx context.Context, after meta.LinkKey, n int) ([]meta.LinkKey, error) {
	out, err := s.linkKeys(ctx, s.q.Links, after.Repo, string(after.Digest), limit(n))
	if err != nil {
		return nil, fmt.Errorf("%s: links: %w", s.name, err)
	}
	return out, nil
}

func (s *Store) linkKeys(ctx context.Context, q string, args ...any) ([]meta.LinkKey, error) {
	rows, err := s.r.Query(ctx, q, args...)
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

// SweepLinks removes each link made before before whose blob no manifest
// of its repository references, in one statement (so one transaction),
// each re-checked as it is deleted. It returns how many links it removed.
func (s *Store) SweepLinks(ctx context.Context, keys []meta.LinkKey, before time.Time) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	pairs := make([][2]string, len(keys))
	for i, k := range keys {
		pairs[i] = [2]string{k.Repo, string(k.Digest)}
	}
	arg, err := json.Marshal(pairs)
	if err != nil {
		return 0, fmt.Errorf("%s: sweep links: %w", s.name, err)
	}
	n, err := rowsAffected(s.wexec(ctx, s.q.SweepLinks, string(arg), nanos(before)))
	if err != nil {
		return 0, fmt.Errorf("%s: sweep %d links: %w", s.name, len(keys), err)
	}
	return int(n), nil
}

// UnlinkedBlobs lists tombstones (whoever holds them) and the rows,
// recorded before before, of blobs with no link and no reference, ordered
// by digest, after the cursor. With a zero before it lists only
// tombstones.
func (s *Store) UnlinkedBlobs(ctx context.Context, before time.Time, after digest.Digest, n int) ([]meta.BlobRecord, error) {
	out, err := s.blobRecords(ctx, s.q.UnlinkedBlobs, string(after), nanos(before), limit(n))
	if err != nil {
		return nil, fmt.Errorf("%s: unlinked blobs: %w", s.name, err)
	}
	return out, nil
}

// BlobRecords lists every blob row, ordered by digest, after the cursor.
func (s *Store) BlobRecords(ctx context.Context, after digest.Digest, n int) ([]meta.BlobRecord, error) {
	out, err := s.blobRecords(ctx, s.q.BlobRecords, string(after), limit(n))
	if err != nil {
		return nil, fmt.Errorf("%s: blob records: %w", s.name, err)
	}
	return out, nil
}

func (s *Store) blobRecords(ctx context.Context, q string, args ...any) ([]meta.BlobRecord, error) {
	rows, err := s.r.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []meta.BlobRecord
	for rows.Next() {
		var b meta.BlobRecord
		var d string
		var expires int64
		if err := rows.Scan(&d, &b.Size, &b.Deleting, &expires); err != nil {
			return nil, err
		}
		b.Digest = digest.Digest(d)
		if b.Deleting {
			b.ClaimExpires = fromNanos(expires)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// BlobRecord returns the blob's row, or an error wrapping
// meta.ErrBlobNotFound if there is none.
func (s *Store) BlobRecord(ctx context.Context, d digest.Digest) (meta.BlobRecord, error) {
	b := meta.BlobRecord{Digest: d}
	var expires int64
	err := s.r.QueryRow(ctx, s.q.BlobRecord, string(d)).Scan(&b.Size, &b.Deleting, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return meta.BlobRecord{}, fmt.Errorf("blob %s: no row: %w", d, meta.ErrBlobNotFound)
	case err != nil:
		return meta.BlobRecord{}, fmt.Errorf("%s: blob %s: %w", s.name, d, err)
	}
	if b.Deleting {
		b.ClaimExpires = fromNanos(expires)
	}
	return b, nil
}

// ClaimBlobs makes each candidate's row a tombstone held by claim, so that
// its bytes may be deleted (the candidates' Deleting and ClaimExpires are
// ignored; Size is recorded for those without a row), in one transaction
// whose statements re-check every row: a blob without a row gets a
// tombstone; a tombstone claim already holds stays its own (with a new
// lease); another run's tombstone is taken over only if its lease ended
// before claim.At; a row recorded at or after before, or with a link or a
// reference, is left alone; any other row becomes a tombstone. It returns the
// blobs claim holds, each with its row's size and lease, ordered by
// digest: never a tombstone of another run whose lease is still running.
func (s *Store) ClaimBlobs(ctx context.Context, cands []meta.BlobRecord, before time.Time, claim meta.Claim) ([]meta.BlobRecord, error) {
	if len(cands) == 0 {
		return nil, nil
	}
	if claim.Token == "" {
		return nil, fmt.Errorf("%s: claim blobs: empty claim token", s.name)
	}
	keys := make([][2]any, len(cands))
	for i, c := range cands {
		keys[i] = [2]any{string(c.Digest), c.Size}
	}
	arg, err := json.Marshal(keys)
	if err != nil {
		return nil, fmt.Errorf("%s: claim blobs: %w", s.name, err)
	}
	at, expires := nanos(claim.At), nanos(claim.At.Add(claim.Lease))
	var claimed []meta.BlobRecord
	err = s.write(ctx, func(tx *Tx) error {
		claimed = claimed[:0]
		if _, err := tx.Exec(ctx, s.q.InsertTombstones, string(arg), s.nowNanos(), claim.Token, expires); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.q.MarkDeleting, string(arg), nanos(before), claim.Token, expires, at); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, s.q.Claimed, string(arg), claim.Token)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			b := meta.BlobRecord{Deleting: true}
			var d string
			var exp int64
			if err := rows.Scan(&d, &b.Size, &exp); err != nil {
				return err
			}
			b.Digest, b.ClaimExpires = digest.Digest(d), fromNanos(exp)
			claimed = append(claimed, b)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("%s: claim %d blobs: %w", s.name, len(cands), err)
	}
	return claimed, nil
}

// DropBlobs removes the tombstones (once their bytes are gone) the run
// with this token holds, in one statement. A row that is not a
// tombstone, another run's tombstone, or none, is left alone.
func (s *Store) DropBlobs(ctx context.Context, token string, ds []digest.Digest) error {
	if len(ds) == 0 {
		return nil
	}
	if token == "" {
		return fmt.Errorf("%s: drop blobs: empty claim token", s.name)
	}
	arg, err := json.Marshal(ds)
	if err == nil {
		_, err = s.wexec(ctx, s.q.DropBlobs, string(arg), token)
	}
	if err != nil {
		return fmt.Errorf("%s: drop %d blobs: %w", s.name, len(ds), err)
	}
	return nil
}

// BlobRefs lists the RefBlob references of every manifest, ordered by
// (blob digest, repo, manifest digest), after the cursor.
func (s *Store) BlobRefs(ctx context.Context, after meta.BlobRef, n int) ([]meta.BlobRef, error) {
	rows, err := s.r.Query(ctx, s.q.BlobRefs, string(after.Digest), after.Manifest.Repo, string(after.Manifest.Digest), limit(n))
	if err != nil {
		return nil, fmt.Errorf("%s: blob references: %w", s.name, err)
	}
	defer rows.Close()
	var out []meta.BlobRef
	for rows.Next() {
		var r meta.BlobRef
		var md, d string
		if err := rows.Scan(&r.Manifest.Repo, &md, &d); err != nil {
			return nil, fmt.Errorf("%s: blob references: %w", s.name, err)
		}
		r.Manifest.Digest, r.Digest = digest.Digest(md), digest.Digest(d)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: blob references: %w", s.name, err)
	}
	return out, nil
}

// ExpiredUploads lists the ids of upload sessions last updated before
// before, in id order, after the cursor.
func (s *Store) ExpiredUploads(ctx context.Context, before time.Time, after string, n int) ([]string, error) {
	ids, err := s.names(ctx, n, s.q.ExpiredUploads, nanos(before), after, limit(n))
	if err != nil {
		return nil, fmt.Errorf("%s: expired uploads: %w", s.name, err)
	}
	return ids, nil
}

// ExpireUpload deletes the session if it was last updated before before,
// and reports whether it did.
func (s *Store) ExpireUpload(ctx context.Context, id string, before time.Time) (bool, error) {
	n, err := rowsAffected(s.wexec(ctx, s.q.ExpireUpload, id, nanos(before)))
	if err != nil {
		return false, fmt.Errorf("%s: expire upload %s: %w", s.name, id, err)
	}
	return n > 0, nil
}

// UploadKnown reports whether a session with this id exists.
func (s *Store) UploadKnown(ctx context.Context, id string) (bool, error) {
	var one int
	err := s.r.QueryRow(ctx, s.q.UploadExists, id).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("%s: upload %s: %w", s.name, id, err)
	}
	return true, nil
}

package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// PutManifest implements meta.ManifestStore. In one transaction it creates
// the repository, checks that every RefBlob is linked there, stores the
// manifest and its references unless already stored, and points the tags at
// it. m is not modified.
func (s *Store) PutManifest(ctx context.Context, m *meta.Manifest, tags ...string) error {
	if m == nil || m.Repo == "" || m.Digest == "" {
		return fmt.Errorf("%s: put manifest: repository and digest are required", s.name)
	}
	for _, tag := range tags {
		if tag == "" {
			return fmt.Errorf("%s: put manifest %s@%s: empty tag", s.name, m.Repo, m.Digest)
		}
	}
	annotations, err := encodeMap(m.Annotations)
	if err != nil {
		return fmt.Errorf("%s: put manifest %s@%s: annotations: %w", s.name, m.Repo, m.Digest, err)
	}
	labels, err := encodeMap(m.Labels)
	if err != nil {
		return fmt.Errorf("%s: put manifest %s@%s: labels: %w", s.name, m.Repo, m.Digest, err)
	}
	err = s.write(ctx, func(tx *Tx) error {
		return s.putManifest(ctx, tx, m, tags, annotations, labels, s.nowNanos())
	})
	if s.tags != nil && len(tags) > 0 {
		s.tags.forget(m.Repo, tags)
	}
	var unknown *meta.BlobUnknownError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("put manifest %s@%s: %w", m.Repo, m.Digest, err)
	case err != nil:
		return fmt.Errorf("%s: put manifest %s@%s: %w", s.name, m.Repo, m.Digest, err)
	}
	return nil
}

// putManifest is PutManifest's transaction; annotations and labels are
// encoded.
func (s *Store) putManifest(ctx context.Context, tx *Tx, m *meta.Manifest, tags []string, annotations, labels any, t int64) error {
	repoID, err := s.ensureRepo(ctx, tx, m.Repo, t)
	if err != nil {
		return err
	}
	if err := s.checkLinked(ctx, tx, repoID, m.Refs); err != nil {
		return err
	}
	n, err := rowsAffected(tx.Exec(ctx, s.q.InsertManifest,
		repoID, string(m.Digest), m.MediaType, m.Content, len(m.Content), m.ArtifactType,
		string(m.Subject), string(m.Config), annotations, labels,
		m.OS, m.Architecture, m.Variant, nullTime(m.Created), m.TotalSize, t))
	if err != nil {
		return err
	}
	sorted := sortedTags(tags)
	if n > 0 { // new: record its references
		for i, r := range m.Refs {
			if _, err := tx.Exec(ctx, s.q.InsertRef, repoID, string(m.Digest), i,
				string(r.Digest), int(r.Kind), r.MediaType, r.Size, r.Platform); err != nil {
				return err
			}
		}
		// Its icons, in the same transaction: one write per push.
		for _, ic := range m.Icons {
			if _, err := tx.Exec(ctx, s.q.InsertIcon, string(ic.Digest), ic.PNG, t); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, s.q.PutManifestIcon, m.Repo, string(m.Digest), ic.Size, string(ic.Digest)); err != nil {
				return err
			}
		}
		if err := s.insertEvent(ctx, tx, meta.EventManifestPush, m.Repo, meta.ManifestPushPayload{
			Digest: m.Digest, MediaType: m.MediaType, Size: int64(len(m.Content)), TotalSize: m.TotalSize, Tags: sorted,
		}, t); err != nil {
			return err
		}
	}
	for _, tag := range sorted {
		// A tag that already points here changes nothing and reports
		// nothing.
		var prev string
		err := tx.QueryRow(ctx, s.q.TagDigest, repoID, tag).Scan(&prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if prev == string(m.Digest) {
			continue
		}
		if prev != "" && m.KeepTags {
			return fmt.Errorf("tag %s: %w", tag, meta.ErrTagExists)
		}
		if _, err := tx.Exec(ctx, s.q.UpsertTag, repoID, tag, string(m.Digest), t); err != nil {
			return err
		}
		if err := s.insertEvent(ctx, tx, meta.EventTagUpdate, m.Repo, meta.TagUpdatePayload{
			Tag: tag, Digest: m.Digest, Previous: digest.Digest(prev),
		}, t); err != nil {
			return err
		}
	}
	return nil
}

// checkLinked returns a *meta.BlobUnknownError for the first RefBlob not
// linked in the repository.
func (s *Store) checkLinked(ctx context.Context, tx *Tx, repoID int64, refs []meta.Ref) error {
	seen := make(map[digest.Digest]bool, len(refs))
	for _, r := range refs {
		if r.Kind != meta.RefBlob || seen[r.Digest] {
			continue
		}
		seen[r.Digest] = true
		var one int
		err := tx.QueryRow(ctx, s.q.Linked, repoID, string(r.Digest)).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return &meta.BlobUnknownError{Digest: r.Digest}
		case err != nil:
			return err
		}
	}
	return nil
}

// GetManifest implements meta.ManifestStore. The manifest and its references
// are read in one snapshot.
func (s *Store) GetManifest(ctx context.Context, repo string, d digest.Digest) (*meta.Manifest, error) {
	m, err := s.getManifest(ctx, repo, d)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("manifest %s@%s: %w", repo, d, meta.ErrManifestNotFound)
	case err != nil:
		return nil, fmt.Errorf("%s: get manifest %s@%s: %w", s.name, repo, d, err)
	}
	return m, nil
}

func (s *Store) getManifest(ctx context.Context, repo string, d digest.Digest) (*meta.Manifest, error) {
	tx, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()

	m := &meta.Manifest{Repo: repo, Digest: d}
	var (
		repoID              int64
		subject, config     string
		annotations, labels sql.NullString
		created             sql.NullInt64
		pushed              int64
	)
	err = tx.QueryRow(ctx, s.q.GetManifest, repo, string(d)).Scan(
		&repoID, &m.MediaType, &m.Content, &m.ArtifactType, &subject, &config,
		&annotations, &labels, &m.OS, &m.Architecture, &m.Variant, &created, &m.TotalSize, &pushed)
	if err != nil {
		return nil, err
	}
	m.Subject, m.Config = digest.Digest(subject), digest.Digest(config)
	m.Created, m.Pushed = fromNullNanos(created), fromNanos(pushed)
	if m.Annotations, err = decodeMap(annotations); err != nil {
		return nil, fmt.Errorf("annotations: %w", err)
	}
	if m.Labels, err = decodeMap(labels); err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}

	rows, err := tx.Query(ctx, s.q.GetRefs, repoID, string(d))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			r    meta.Ref
			dgst string
			kind int
		)
		if err := rows.Scan(&dgst, &kind, &r.MediaType, &r.Size, &r.Platform); err != nil {
			return nil, err
		}
		r.Digest, r.Kind = digest.Digest(dgst), meta.RefKind(kind)
		m.Refs = append(m.Refs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

// ManifestBody implements meta.ManifestStore.
func (s *Store) ManifestBody(ctx context.Context, repo string, d digest.Digest) (meta.ManifestBody, error) {
	b := meta.ManifestBody{Digest: d}
	err := s.r.QueryRow(ctx, s.q.ManifestBody, repo, string(d)).Scan(&b.MediaType, &b.Content)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return meta.ManifestBody{}, fmt.Errorf("manifest %s@%s: %w", repo, d, meta.ErrManifestNotFound)
	case err != nil:
		return meta.ManifestBody{}, fmt.Errorf("%s: manifest %s@%s: %w", s.name, repo, d, err)
	}
	return b, nil
}

// TagBody implements meta.ManifestStore.
func (s *Store) TagBody(ctx context.Context, repo, tag string) (meta.ManifestBody, error) {
	if s.tags == nil {
		return s.tagBody(ctx, repo, tag)
	}
	b, ok, gen := s.tags.get(repo, tag)
	if ok {
		return b, nil
	}
	b, err := s.tagBody(ctx, repo, tag)
	if err == nil {
		s.tags.put(repo, tag, b, gen)
	}
	return b, err
}

// tagBody is TagBody's query.
func (s *Store) tagBody(ctx context.Context, repo, tag string) (meta.ManifestBody, error) {
	var (
		b meta.ManifestBody
		d string
	)
	err := s.r.QueryRow(ctx, s.q.TagBody, repo, tag).Scan(&d, &b.MediaType, &b.Content)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return meta.ManifestBody{}, fmt.Errorf("tag %s:%s: %w", repo, tag, meta.ErrTagNotFound)
	case err != nil:
		return meta.ManifestBody{}, fmt.Errorf("%s: tag %s:%s: %w", s.name, repo, tag, err)
	}
	b.Digest = digest.Digest(d)
	return b, nil
}

// ResolveTag implements meta.ManifestStore.
func (s *Store) ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	var d string
	err := s.r.QueryRow(ctx, s.q.ResolveTag, repo, tag).Scan(&d)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", fmt.Errorf("tag %s:%s: %w", repo, tag, meta.ErrTagNotFound)
	case err != nil:
		return "", fmt.Errorf("%s: resolve tag %s:%s: %w", s.name, repo, tag, err)
	}
	return digest.Digest(d), nil
}

// DeleteManifest implements meta.ManifestStore. Blob links and the
// manifest's referrers stay.
func (s *Store) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	var deleted []string // the tags of the run of fn that committed
	err := s.write(ctx, func(tx *Tx) error {
		var repoID int64
		if err := tx.QueryRow(ctx, s.q.RepoID, repo).Scan(&repoID); err != nil {
			return err
		}
		tags, err := s.tagsOf(ctx, tx, repoID, d)
		if err != nil {
			return err
		}
		deleted = tags
		if _, err := tx.Exec(ctx, s.q.DeleteTagsOf, repoID, string(d)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.q.DeleteRefsOf, repoID, string(d)); err != nil {
			return err
		}
		n, err := rowsAffected(tx.Exec(ctx, s.q.DeleteManifest, repoID, string(d)))
		if err == nil && n == 0 {
			err = sql.ErrNoRows
		}
		if err != nil {
			return err
		}
		return s.insertEvent(ctx, tx, meta.EventManifestDelete, repo,
			meta.ManifestDeletePayload{Digest: d, Tags: tags}, s.nowNanos())
	})
	if s.tags != nil && len(deleted) > 0 {
		s.tags.forget(repo, deleted)
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("delete manifest %s@%s: %w", repo, d, meta.ErrManifestNotFound)
	case err != nil:
		return fmt.Errorf("%s: delete manifest %s@%s: %w", s.name, repo, d, err)
	}
	return nil
}

// tagsOf returns the tags pointing at a manifest, in byte order, never
// nil.
func (s *Store) tagsOf(ctx context.Context, tx *Tx, repoID int64, d digest.Digest) ([]string, error) {
	rows, err := tx.Query(ctx, s.q.TagsOf, repoID, string(d))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	tags := []string{}
	for rows.Next() {
		var tag string
		if err := rows.Scan(&tag); err != nil {
			return nil, err
		}
		tags = append(tags, tag)
	}
	return tags, rows.Err()
}

// DeleteTag implements meta.ManifestStore. The tag.delete event names the
// digest the tag pointed at, read in the deleting transaction.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) error {
	err := s.write(ctx, func(tx *Tx) error {
		var repoID int64
		if err := tx.QueryRow(ctx, s.q.RepoID, repo).Scan(&repoID); err != nil {
			return err
		}
		var d string
		if err := tx.QueryRow(ctx, s.q.TagDigest, repoID, tag).Scan(&d); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.q.DeleteTag, repo, tag); err != nil {
			return err
		}
		return s.insertEvent(ctx, tx, meta.EventTagDelete, repo,
			meta.TagDeletePayload{Tag: tag, Digest: digest.Digest(d)}, s.nowNanos())
	})
	if s.tags != nil {
		s.tags.forget(repo, []string{tag})
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("delete tag %s:%s: %w", repo, tag, meta.ErrTagNotFound)
	case err != nil:
		return fmt.Errorf("%s: delete tag %s:%s: %w", s.name, repo, tag, err)
	}
	return nil
}

// ManifestSizes implements meta.ManifestStore.
func (s *Store) ManifestSizes(ctx context.Context, repo string, ds []digest.Digest) (map[digest.Digest]meta.ManifestSize, error) {
	out := make(map[digest.Digest]meta.ManifestSize, len(ds))
	if len(ds) == 0 {
		return out, nil
	}
	arg, err := json.Marshal(ds)
	if err != nil {
		return nil, fmt.Errorf("%s: manifest sizes in %s: %w", s.name, repo, err)
	}
	rows, err := s.r.Query(ctx, s.q.ManifestSizes, repo, string(arg))
	if err != nil {
		return nil, fmt.Errorf("%s: manifest sizes in %s: %w", s.name, repo, err)
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		var size meta.ManifestSize
		if err := rows.Scan(&d, &size.Content, &size.Total); err != nil {
			return nil, fmt.Errorf("%s: manifest sizes in %s: %w", s.name, repo, err)
		}
		out[digest.Digest(d)] = size
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: manifest sizes in %s: %w", s.name, repo, err)
	}
	return out, nil
}

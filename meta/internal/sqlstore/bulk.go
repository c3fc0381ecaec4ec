package sqlstore

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// BulkLink is one blob link for Load.
type BulkLink struct {
	Repo   string
	Digest digest.Digest
	Size   int64
}

// BulkManifest is one manifest and its tags for Load.
type BulkManifest struct {
	Manifest *meta.Manifest
	Tags     []string
}

// Load writes links and then manifests in one transaction, with the rows
// and checks of LinkBlob and PutManifest (a tombstoned blob, or a
// manifest's blob not linked in its repository, fails the whole load, and
// nothing is written). It is for building large stores quickly, in tests
// and benchmarks, where one transaction per row would take minutes; the
// caller bounds the batch. Registries write through LinkBlob and
// PutManifest.
func (s *Store) Load(ctx context.Context, links []BulkLink, manifests []BulkManifest) error {
	err := s.write(ctx, func(tx *Tx) error {
		t := s.nowNanos()
		for _, l := range links {
			if err := s.linkBlob(ctx, tx, l.Repo, l.Digest, l.Size, t); err != nil {
				return fmt.Errorf("link %s into %s: %w", l.Digest, l.Repo, err)
			}
		}
		for _, bm := range manifests {
			m := bm.Manifest
			annotations, err := encodeMap(m.Annotations)
			if err != nil {
				return fmt.Errorf("manifest %s@%s: annotations: %w", m.Repo, m.Digest, err)
			}
			labels, err := encodeMap(m.Labels)
			if err != nil {
				return fmt.Errorf("manifest %s@%s: labels: %w", m.Repo, m.Digest, err)
			}
			if err := s.putManifest(ctx, tx, m, bm.Tags, annotations, labels, t); err != nil {
				return fmt.Errorf("manifest %s@%s: %w", m.Repo, m.Digest, err)
			}
		}
		return nil
	})
	if s.tags != nil {
		s.tags.clear()
	}
	if err != nil {
		return fmt.Errorf("%s: load: %w", s.name, err)
	}
	return nil
}

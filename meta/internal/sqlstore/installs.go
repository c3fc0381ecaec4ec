package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// Flatpak install counts (migration 0008) and the lookup that attributes
// a downloaded blob to the images that use it.

// AddInstalls adds the counts, in one transaction.
func (s *Store) AddInstalls(ctx context.Context, counts []meta.InstallCount) error {
	if len(counts) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *Tx) error {
		for _, c := range counts {
			if c.Kind != meta.KindInstall && c.Kind != meta.KindUpdate {
				return fmt.Errorf("install kind %q", c.Kind)
			}
			if _, err := tx.Exec(ctx, s.q.AddInstalls, c.Day, c.Repo, c.Ref, c.Version.String(), c.Kind, c.Count); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: add installs: %w", s.name, err)
	}
	return nil
}

// InstallTotals sums the counts from day sinceDay on, per repository,
// ref, version and kind.
func (s *Store) InstallTotals(ctx context.Context, sinceDay int64) ([]meta.InstallTotal, error) {
	rows, err := s.r.Query(ctx, s.q.InstallTotals, sinceDay)
	if err != nil {
		return nil, fmt.Errorf("%s: install totals: %w", s.name, err)
	}
	defer rows.Close()
	var out []meta.InstallTotal
	for rows.Next() {
		var t meta.InstallTotal
		if err := rows.Scan(&t.Repo, &t.Ref, &t.Version, &t.Kind, &t.Count); err != nil {
			return nil, fmt.Errorf("%s: install totals: %w", s.name, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// BlobUsers returns at most n manifests of repo that reference blob d
// (as config or layer), newest push first, with Digest, Config,
// ArtifactType, Annotations and Labels set.
func (s *Store) BlobUsers(ctx context.Context, repo string, d digest.Digest, n int) ([]meta.Manifest, error) {
	rows, err := s.r.Query(ctx, s.q.BlobUsers, repo, d.String(), n)
	if err != nil {
		return nil, fmt.Errorf("%s: manifests using %s: %w", s.name, d, err)
	}
	defer rows.Close()
	var out []meta.Manifest
	for rows.Next() {
		var (
			m           meta.Manifest
			ann, labels []byte
		)
		if err := rows.Scan(&m.Digest, &m.Config, &m.ArtifactType, &ann, &labels); err != nil {
			return nil, fmt.Errorf("%s: manifests using %s: %w", s.name, d, err)
		}
		m.Repo = repo
		if len(ann) > 0 {
			if err := json.Unmarshal(ann, &m.Annotations); err != nil {
				return nil, fmt.Errorf("%s: annotations of %s: %w", s.name, m.Digest, err)
			}
		}
		if len(labels) > 0 {
			if err := json.Unmarshal(labels, &m.Labels); err != nil {
				return nil, fmt.Errorf("%s: labels of %s: %w", s.name, m.Digest, err)
			}
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

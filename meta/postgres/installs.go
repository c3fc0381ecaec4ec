package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// Flatpak install counts (migration 0008) and the lookup that attributes
// a downloaded blob to the images that use it.

const (
	qAddInstalls = `INSERT INTO flatpak_installs (day, repo, ref, version, kind, count)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (day, repo, ref, version, kind) DO UPDATE SET count = flatpak_installs.count + excluded.count`
	qInstallTotals = `SELECT repo, ref, version, kind, SUM(count) FROM flatpak_installs
WHERE day >= $1
GROUP BY repo, ref, version, kind
ORDER BY repo, ref, version, kind`
	// The manifests of repository $1 that reference blob $2 (config or
	// layer), at most $3.
	qBlobUsers = `SELECT m.digest, m.config, m.artifact_type, m.annotations, m.labels
FROM manifest_refs f
JOIN repositories r ON r.id = f.repo_id
JOIN manifests m ON m.repo_id = f.repo_id AND m.digest = f.manifest_digest
WHERE f.ref_digest = $2 AND r.name = $1 AND f.kind = 1
GROUP BY m.repo_id, m.digest
ORDER BY m.pushed DESC, m.digest LIMIT $3`
)

// AddInstalls adds the counts, in one transaction.
func (s *Store) AddInstalls(ctx context.Context, counts []meta.InstallCount) error {
	if len(counts) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx txn) error {
		for _, c := range counts {
			if c.Kind != meta.KindInstall && c.Kind != meta.KindUpdate {
				return fmt.Errorf("install kind %q", c.Kind)
			}
			if _, err := tx.exec(ctx, qAddInstalls, c.Day, c.Repo, c.Ref, c.Version.String(), c.Kind, c.Count); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: add installs: %w", err)
	}
	return nil
}

// InstallTotals sums the counts from day sinceDay on, per repository,
// ref, version and kind.
func (s *Store) InstallTotals(ctx context.Context, sinceDay int64) ([]meta.InstallTotal, error) {
	rows, err := s.r.query(ctx, qInstallTotals, sinceDay)
	if err != nil {
		return nil, fmt.Errorf("postgres: install totals: %w", err)
	}
	defer rows.Close()
	var out []meta.InstallTotal
	for rows.Next() {
		var t meta.InstallTotal
		if err := rows.Scan(&t.Repo, &t.Ref, &t.Version, &t.Kind, &t.Count); err != nil {
			return nil, fmt.Errorf("postgres: install totals: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// BlobUsers returns at most n manifests of repo that reference blob d
// (as config or layer), newest push first, with Digest, Config,
// ArtifactType, Annotations and Labels set.
func (s *Store) BlobUsers(ctx context.Context, repo string, d digest.Digest, n int) ([]meta.Manifest, error) {
	rows, err := s.r.query(ctx, qBlobUsers, repo, d.String(), n)
	if err != nil {
		return nil, fmt.Errorf("postgres: manifests using %s: %w", d, err)
	}
	defer rows.Close()
	var out []meta.Manifest
	for rows.Next() {
		var (
			m           meta.Manifest
			ann, labels []byte
		)
		if err := rows.Scan(&m.Digest, &m.Config, &m.ArtifactType, &ann, &labels); err != nil {
			return nil, fmt.Errorf("postgres: manifests using %s: %w", d, err)
		}
		m.Repo = repo
		if len(ann) > 0 {
			if err := json.Unmarshal(ann, &m.Annotations); err != nil {
				return nil, fmt.Errorf("postgres: annotations of %s: %w", m.Digest, err)
			}
		}
		if len(labels) > 0 {
			if err := json.Unmarshal(labels, &m.Labels); err != nil {
				return nil, fmt.Errorf("postgres: labels of %s: %w", m.Digest, err)
			}
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

package postgres

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// qIconRepositories lists, in byte order and once each, the repositories
// holding a manifest that shows the icon $1 (manifest_icons_icon indexes
// the lookup).
const qIconRepositories = `SELECT DISTINCT r.name
FROM manifest_icons i
JOIN repositories r ON r.id = i.repo_id
WHERE i.icon = $1
ORDER BY r.name`

// IconRepositories calls fn with each repository (in byte order, once
// each) holding a manifest that shows the icon d, until fn returns false.
// The Flatpak remote serves an icon only to a requester who may pull one
// of them (contract: metatest.RunIconAccess).
func (s *Store) IconRepositories(ctx context.Context, d digest.Digest, fn func(repo string) bool) error {
	rows, err := s.r.db.QueryContext(ctx, qIconRepositories, string(d))
	if err != nil {
		return fmt.Errorf("postgres: repositories of icon %s: %w", d, err)
	}
	defer rows.Close()
	for rows.Next() {
		var repo string
		if err := rows.Scan(&repo); err != nil {
			return fmt.Errorf("postgres: repositories of icon %s: %w", d, err)
		}
		if !fn(repo) {
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: repositories of icon %s: %w", d, err)
	}
	return nil
}

package sqlstore

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// IconRepositories calls fn with each repository (in byte order, once
// each) holding a manifest that shows the icon d, until fn returns false.
// The Flatpak remote serves an icon only to a requester who may pull one
// of them (contract: metatest.RunIconAccess).
func (s *Store) IconRepositories(ctx context.Context, d digest.Digest, fn func(repo string) bool) error {
	rows, err := s.r.Query(ctx, s.q.IconRepositories, string(d))
	if err != nil {
		return fmt.Errorf("%s: repositories of icon %s: %w", s.name, d, err)
	}
	defer rows.Close()
	for rows.Next() {
		var repo string
		if err := rows.Scan(&repo); err != nil {
			return fmt.Errorf("%s: repositories of icon %s: %w", s.name, d, err)
		}
		if !fn(repo) {
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: repositories of icon %s: %w", s.name, d, err)
	}
	return nil
}

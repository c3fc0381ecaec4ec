package sqlstore

import (
	"context"
	"fmt"

	"github.com/berth-dev/berth/meta"
)

var _ meta.StatsReader = (*Store)(nil)

// Stats implements meta.StatsReader on the read pool (it never waits for
// a write transaction).
func (s *Store) Stats(ctx context.Context) (meta.Stats, error) {
	var st meta.Stats
	err := s.r.QueryRow(ctx, s.q.Stats).Scan(&st.Repositories, &st.Manifests, &st.Blobs, &st.BlobBytes, &st.Uploads)
	if err != nil {
		return meta.Stats{}, fmt.Errorf("%s: stats: %w", s.name, err)
	}
	return st, nil
}

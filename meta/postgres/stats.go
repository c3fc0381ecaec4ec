package postgres

import (
	"context"
	"fmt"

	"github.com/berth-dev/berth/meta"
)

var _ meta.StatsReader = (*Store)(nil)

// qStats counts from the smallest structure that holds each figure: the
// manifests are counted by an index, never by reading their content, and
// a tombstoned blob (gc deleting it) no longer counts.
const qStats = `SELECT
	(SELECT count(*) FROM repositories),
	(SELECT count(*) FROM manifests),
	(SELECT count(*) FROM blobs WHERE deleting = 0),
	(SELECT coalesce(sum(size), 0) FROM blobs WHERE deleting = 0),
	(SELECT count(*) FROM uploads)`

// Stats implements meta.StatsReader on the read pool (it never waits for
// a write transaction).
func (s *Store) Stats(ctx context.Context) (meta.Stats, error) {
	var st meta.Stats
	err := s.r.db.QueryRowContext(ctx, qStats).Scan(&st.Repositories, &st.Manifests, &st.Blobs, &st.BlobBytes, &st.Uploads)
	if err != nil {
		return meta.Stats{}, fmt.Errorf("postgres: stats: %w", err)
	}
	return st, nil
}

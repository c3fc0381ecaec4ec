package meta

import "context"

// Stats are the store's totals, for metrics. Blob figures count each
// stored blob once, however many repositories link it.
type Stats struct {
	Repositories int64
	Manifests    int64
	Blobs        int64
	BlobBytes    int64
	// Uploads is the number of open upload sessions.
	Uploads int64
}

// StatsReader reports the store's totals. It reads every row of the
// blobs table and the indexes of the others: cheap next to a push, but
// its callers cache the answer rather than ask per request.
type StatsReader interface {
	Stats(ctx context.Context) (Stats, error)
}

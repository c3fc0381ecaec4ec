package gc

import (
	"context"
	"time"

	"github.com/berth-dev/berth/meta"
)

// recordRun writes the run's gc.run event to the outbox when the
// metadata store keeps one (meta.GCRunRecorder), so webhooks report it.
// It is written even when ctx has ended (a run cut short still deleted
// what it deleted); a failure is logged, not the run's error.
func (c *Collector) recordRun(ctx context.Context, r Report, err error) {
	rec, ok := c.meta.(meta.GCRunRecorder)
	if !ok {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	ev := meta.GCRun{
		Manifests: r.Manifests, Links: r.Links, Blobs: r.Blobs, OrphanFiles: r.OrphanFiles,
		BytesFreed: r.BytesFreed, Uploads: r.Uploads, UploadData: r.UploadData,
		Failed: r.Failed, Error: err != nil, DurationMS: r.Duration.Milliseconds(),
	}
	if werr := rec.RecordGCRun(wctx, ev); werr != nil {
		c.log.WarnContext(ctx, "gc: recording the run's event", "err", werr)
	}
}

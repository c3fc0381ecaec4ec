package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/meta"
)

// ManifestSweeper finds and deletes unreferenced manifests.
type ManifestSweeper interface {
	// UntaggedManifests lists manifests no tag or index points at, after
	// the cursor in (repo, digest) order, at most n.
	UntaggedManifests(ctx context.Context, after meta.ManifestKey, n int) ([]meta.UntaggedManifest, error)
	// SweepManifests deletes, in one transaction, each manifest for which
	// rule still holds when the transaction reaches it, and returns those
	// it deleted.
	SweepManifests(ctx context.Context, keys []meta.ManifestKey, rule meta.ManifestSweep) ([]meta.ManifestKey, error)
}

// LinkSweeper finds and deletes blob links no manifest needs.
type LinkSweeper interface {
	UnreferencedLinks(ctx context.Context, before time.Time, after meta.LinkKey, n int) ([]meta.LinkKey, error)
	// SweepLinks deletes, in one transaction, each link still made before
	// before and still unreferenced, and returns how many it deleted.
	SweepLinks(ctx context.Context, keys []meta.LinkKey, before time.Time) (int, error)
}

// BlobClaimer tombstones blob rows so their bytes can be deleted.
type BlobClaimer interface {
	UnlinkedBlobs(ctx context.Context, before time.Time, after digest.Digest, n int) ([]meta.BlobRecord, error)
	// BlobRecord returns the row, or an error wrapping meta.ErrBlobNotFound.
	BlobRecord(ctx context.Context, d digest.Digest) (meta.BlobRecord, error)
	// ClaimBlobs makes tombstones, in one transaction, of the candidates
	// whose rows are still unlinked, unreferenced and recorded before
	// before, or that have no row (Size is recorded for those); it returns
	// every candidate that is a tombstone now, with its row's size.
	ClaimBlobs(ctx context.Context, cands []meta.BlobRecord, before time.Time) ([]meta.BlobRecord, error)
	// DropBlobs removes tombstones, in one transaction.
	DropBlobs(ctx context.Context, ds []digest.Digest) error
}

// UploadExpirer finds and deletes idle upload sessions.
type UploadExpirer interface {
	ExpiredUploads(ctx context.Context, before time.Time, after string, n int) ([]string, error)
	ExpireUpload(ctx context.Context, id string, before time.Time) (bool, error)
	UploadKnown(ctx context.Context, id string) (bool, error)
}

// Meta is what gc needs of the metadata store (meta/sqlite implements it;
// meta/metatest's GC subtests are its contract).
type Meta interface {
	ManifestSweeper
	LinkSweeper
	BlobClaimer
	UploadExpirer
}

// Blobs is what gc needs of the blob store.
type Blobs interface {
	Delete(ctx context.Context, d digest.Digest) error
	Walk(ctx context.Context, fn func(blob.Info) error) error
	WalkUploads(ctx context.Context, fn func(id string, modTime time.Time) error) error
	AbortUpload(ctx context.Context, id string) error
}

// Policy says what is garbage.
type Policy struct {
	// Grace protects recent links, blob rows and orphan files, and
	// referrers whose subject is gone, for this long.
	Grace time.Duration
	// UntaggedAfter deletes manifests no tag, index or existing subject
	// keeps once they are this old; 0 keeps them forever.
	UntaggedAfter time.Duration
	// UploadExpireAfter deletes upload sessions (and upload data without a
	// session) idle for this long; 0 keeps them.
	UploadExpireAfter time.Duration
}

// Report says what one run deleted (or, in a dry run, would delete).
type Report struct {
	DryRun      bool
	Manifests   int   // manifests deleted
	Links       int   // blob links deleted
	Blobs       int   // blob rows deleted (with their bytes)
	OrphanFiles int   // blob files without a row deleted
	BytesFreed  int64 // bytes of blob files deleted
	Uploads     int   // expired upload sessions deleted
	UploadData  int   // upload data without a session deleted
	Duration    time.Duration
	Passes      int // manifest sweep passes (an index frees its children for the next)
}

// LogValue implements slog.LogValuer.
func (r Report) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("dry_run", r.DryRun),
		slog.Int("manifests", r.Manifests),
		slog.Int("links", r.Links),
		slog.Int("blobs", r.Blobs),
		slog.Int("orphan_files", r.OrphanFiles),
		slog.Int64("bytes_freed", r.BytesFreed),
		slog.Int("uploads", r.Uploads),
		slog.Int("upload_data", r.UploadData),
		slog.Duration("duration", r.Duration),
	)
}

// page is the size of every listing gc asks for: memory stays flat
// whatever the store holds. batch is the most rows one deleting
// transaction handles: a write transaction costs a sync of the database,
// so per-row transactions would bound gc to a few hundred rows a second,
// while a batch keeps each transaction (and the wait of a push behind it)
// short.
const (
	page  = 1000
	batch = 500
)

// chunks calls fn on consecutive slices of xs of at most batch elements.
func chunks[T any](xs []T, fn func([]T) error) error {
	for len(xs) > 0 {
		n := min(batch, len(xs))
		if err := fn(xs[:n]); err != nil {
			return err
		}
		xs = xs[n:]
	}
	return nil
}

// Collector runs garbage collection. It is safe for concurrent use; runs
// are serialised.
type Collector struct {
	meta  Meta
	blobs Blobs
	pol   Policy
	log   *slog.Logger
	now   func() time.Time
	mu    sync.Mutex
}

// New returns a Collector over the stores. A nil logger discards.
func New(md Meta, blobs Blobs, pol Policy, logger *slog.Logger) *Collector {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Collector{meta: md, blobs: blobs, pol: pol, log: logger, now: time.Now}
}

// Run collects once. With dryRun nothing is deleted and the report counts
// what would be, phase by phase as the store is now: garbage that only a
// deletion in the same run would free (the blobs of a manifest about to
// go) is not counted. An error stops the run; what was deleted stays
// deleted and a tombstone left behind is finished by the next run.
func (c *Collector) Run(ctx context.Context, dryRun bool) (Report, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	began := time.Now() // Duration is real time, whatever c.now says
	start := c.now()
	r := Report{DryRun: dryRun}
	cut := start.Add(-c.pol.Grace)
	err := c.manifests(ctx, start, dryRun, &r)
	if err == nil {
		err = c.links(ctx, cut, dryRun, &r)
	}
	if err == nil {
		err = c.blobRows(ctx, cut, dryRun, &r)
	}
	if err == nil {
		err = c.orphanFiles(ctx, cut, dryRun, &r)
	}
	if err == nil && c.pol.UploadExpireAfter > 0 {
		err = c.uploads(ctx, start.Add(-c.pol.UploadExpireAfter), dryRun, &r)
	}
	r.Duration = time.Since(began)
	if err != nil {
		c.log.ErrorContext(ctx, "gc failed", "report", r, "err", err)
		return r, fmt.Errorf("gc: %w", err)
	}
	c.log.InfoContext(ctx, "gc finished", "report", r)
	return r, nil
}

// RunEvery runs gc every interval until ctx ends. A failed run is logged
// (by Run) and the next one is tried at the next tick.
func (c *Collector) RunEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, _ = c.Run(ctx, false)
	}
}

// rule is the manifest retention rule as of now.
func (c *Collector) rule(now time.Time) meta.ManifestSweep {
	var rule meta.ManifestSweep
	if c.pol.UntaggedAfter > 0 {
		rule.UntaggedBefore = now.Add(-c.pol.UntaggedAfter)
	}
	rule.OrphanBefore = now.Add(-c.pol.Grace)
	return rule
}

// eligible is the rule applied to a listed manifest, to spare a write
// transaction for manifests the store would keep anyway.
func eligible(rule meta.ManifestSweep, m meta.UntaggedManifest) bool {
	if m.Subject != "" && m.SubjectExists {
		return false
	}
	if !rule.UntaggedBefore.IsZero() && m.Pushed.Before(rule.UntaggedBefore) {
		return true
	}
	return m.Subject != "" && !rule.OrphanBefore.IsZero() && m.Pushed.Before(rule.OrphanBefore)
}

// manifests sweeps untagged manifests, in passes: deleting an index frees
// its children, and deleting a subject orphans its referrers, for the next
// pass.
func (c *Collector) manifests(ctx context.Context, now time.Time, dryRun bool, r *Report) error {
	rule := c.rule(now)
	for {
		r.Passes++
		deleted := 0
		var after meta.ManifestKey
		for {
			ms, err := c.meta.UntaggedManifests(ctx, after, page)
			if err != nil {
				return err
			}
			var keys []meta.ManifestKey
			for _, m := range ms {
				if eligible(rule, m) {
					keys = append(keys, m.ManifestKey)
				}
			}
			if dryRun {
				r.Manifests += len(keys)
			} else if err := chunks(keys, func(keys []meta.ManifestKey) error {
				swept, err := c.meta.SweepManifests(ctx, keys, rule)
				deleted += len(swept)
				r.Manifests += len(swept)
				for _, k := range swept {
					c.log.DebugContext(ctx, "gc: manifest deleted", "repo", k.Repo, "digest", k.Digest)
				}
				return err
			}); err != nil {
				return err
			}
			if len(ms) < page {
				break
			}
			after = ms[len(ms)-1].ManifestKey
		}
		if dryRun || deleted == 0 {
			return nil
		}
	}
}

func (c *Collector) links(ctx context.Context, cut time.Time, dryRun bool, r *Report) error {
	var after meta.LinkKey
	for {
		ls, err := c.meta.UnreferencedLinks(ctx, cut, after, page)
		if err != nil {
			return err
		}
		if dryRun {
			r.Links += len(ls)
		} else if err := chunks(ls, func(ls []meta.LinkKey) error {
			n, err := c.meta.SweepLinks(ctx, ls, cut)
			r.Links += n
			return err
		}); err != nil {
			return err
		}
		if len(ls) < page {
			return nil
		}
		after = ls[len(ls)-1]
	}
}

func (c *Collector) blobRows(ctx context.Context, cut time.Time, dryRun bool, r *Report) error {
	var after digest.Digest
	for {
		bs, err := c.meta.UnlinkedBlobs(ctx, cut, after, page)
		if err != nil {
			return err
		}
		if dryRun {
			for _, b := range bs {
				r.Blobs++
				r.BytesFreed += b.Size
			}
		} else if err := chunks(bs, func(bs []meta.BlobRecord) error {
			n, freed, err := c.deleteBlobs(ctx, bs, cut)
			r.Blobs += n
			r.BytesFreed += freed
			return err
		}); err != nil {
			return err
		}
		if len(bs) < page {
			return nil
		}
		after = bs[len(bs)-1].Digest
	}
}

// deleteBlobs claims the candidates (tombstones their rows, or puts
// tombstones where there are none), deletes the bytes of those claimed and
// drops their tombstones. It reports how many it deleted and the bytes
// freed. Once a batch is claimed it is finished even if ctx ends: its
// tombstones would otherwise refuse pushes of those blobs until the next
// run. Bytes that fail to delete keep their tombstones for the next run.
func (c *Collector) deleteBlobs(ctx context.Context, cands []meta.BlobRecord, cut time.Time) (int, int64, error) {
	claimed, err := c.meta.ClaimBlobs(ctx, cands, cut)
	if err != nil || len(claimed) == 0 {
		return 0, 0, err
	}
	ctx = context.WithoutCancel(ctx)
	var (
		gone  = make([]digest.Digest, 0, len(claimed))
		freed int64
		errs  []error
	)
	for _, b := range claimed {
		switch err := c.blobs.Delete(ctx, b.Digest); {
		case err == nil:
			freed += b.Size
		case errors.Is(err, blob.ErrNotFound):
			// A crash after the bytes went, or a row whose bytes were lost.
		default:
			errs = append(errs, fmt.Errorf("delete bytes of %s (its tombstone stays for the next run): %w", b.Digest, err))
			continue
		}
		gone = append(gone, b.Digest)
		c.log.DebugContext(ctx, "gc: blob deleted", "digest", b.Digest, "size", b.Size)
	}
	if err := c.meta.DropBlobs(ctx, gone); err != nil {
		return 0, freed, errors.Join(append(errs, err)...)
	}
	return len(gone), freed, errors.Join(errs...)
}

// orphanFiles deletes blob files with no row once they are older than the
// grace period: bytes committed by a push that crashed (or failed) before
// linking them, or bytes whose unsynced deletion a crash undid. They go
// through tombstones like any other blob, a batch at a time, so a push
// linking the same digest meanwhile is ordered against the deletion.
func (c *Collector) orphanFiles(ctx context.Context, cut time.Time, dryRun bool, r *Report) error {
	var orphans []meta.BlobRecord
	flush := func() error {
		n, freed, err := c.deleteBlobs(ctx, orphans, cut)
		r.OrphanFiles += n
		r.BytesFreed += freed
		orphans = orphans[:0]
		return err
	}
	err := c.blobs.Walk(ctx, func(info blob.Info) error {
		if !info.ModTime.Before(cut) {
			return nil
		}
		_, err := c.meta.BlobRecord(ctx, info.Digest)
		switch {
		case err == nil:
			return nil // a row: the blob phase decides
		case !errors.Is(err, meta.ErrBlobNotFound):
			return err
		}
		if dryRun {
			r.OrphanFiles++
			r.BytesFreed += info.Size
			return nil
		}
		orphans = append(orphans, meta.BlobRecord{Digest: info.Digest, Size: info.Size})
		if len(orphans) == batch {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

func (c *Collector) uploads(ctx context.Context, cut time.Time, dryRun bool, r *Report) error {
	after := ""
	for {
		ids, err := c.meta.ExpiredUploads(ctx, cut, after, page)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if dryRun {
				r.Uploads++
				continue
			}
			ok, err := c.meta.ExpireUpload(ctx, id, cut)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			r.Uploads++
			if err := c.blobs.AbortUpload(ctx, id); err != nil {
				return fmt.Errorf("abort expired upload %s: %w", id, err)
			}
		}
		if len(ids) < page {
			break
		}
		after = ids[len(ids)-1]
	}
	return c.blobs.WalkUploads(ctx, func(id string, mod time.Time) error {
		if !mod.Before(cut) {
			return nil
		}
		known, err := c.meta.UploadKnown(ctx, id)
		if err != nil || known {
			return err
		}
		r.UploadData++
		if dryRun {
			return nil
		}
		if err := c.blobs.AbortUpload(ctx, id); err != nil {
			return fmt.Errorf("remove upload data %s: %w", id, err)
		}
		return nil
	})
}

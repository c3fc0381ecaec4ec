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
	// SweepManifest deletes the manifest if rule still holds, checked in
	// the deleting transaction.
	SweepManifest(ctx context.Context, key meta.ManifestKey, rule meta.ManifestSweep) (bool, error)
}

// LinkSweeper finds and deletes blob links no manifest needs.
type LinkSweeper interface {
	UnreferencedLinks(ctx context.Context, before time.Time, after meta.LinkKey, n int) ([]meta.LinkKey, error)
	SweepLink(ctx context.Context, key meta.LinkKey, before time.Time) (bool, error)
}

// BlobClaimer tombstones blob rows so their bytes can be deleted.
type BlobClaimer interface {
	UnlinkedBlobs(ctx context.Context, before time.Time, after digest.Digest, n int) ([]meta.BlobRecord, error)
	// BlobRecord returns the row, or an error wrapping meta.ErrBlobNotFound.
	BlobRecord(ctx context.Context, d digest.Digest) (meta.BlobRecord, error)
	ClaimBlob(ctx context.Context, d digest.Digest, size int64, before time.Time) (bool, error)
	DropBlob(ctx context.Context, d digest.Digest) error
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
// whatever the store holds.
const page = 1000

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
			for _, m := range ms {
				if !eligible(rule, m) {
					continue
				}
				if dryRun {
					r.Manifests++
					continue
				}
				ok, err := c.meta.SweepManifest(ctx, m.ManifestKey, rule)
				if err != nil {
					return err
				}
				if ok {
					deleted++
					r.Manifests++
					c.log.DebugContext(ctx, "gc: manifest deleted", "repo", m.Repo, "digest", m.Digest)
				}
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
		for _, l := range ls {
			if dryRun {
				r.Links++
				continue
			}
			ok, err := c.meta.SweepLink(ctx, l, cut)
			if err != nil {
				return err
			}
			if ok {
				r.Links++
			}
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
		for _, b := range bs {
			if dryRun {
				r.Blobs++
				r.BytesFreed += b.Size
				continue
			}
			freed, ok, err := c.deleteBlob(ctx, b.Digest, b.Size, cut)
			if err != nil {
				return err
			}
			if ok {
				r.Blobs++
				r.BytesFreed += freed
			}
		}
		if len(bs) < page {
			return nil
		}
		after = bs[len(bs)-1].Digest
	}
}

// deleteBlob claims d (tombstones its row, or puts a tombstone where there
// is none), deletes its bytes and drops the tombstone. It reports the bytes
// freed and whether d was claimed.
func (c *Collector) deleteBlob(ctx context.Context, d digest.Digest, size int64, cut time.Time) (int64, bool, error) {
	ok, err := c.meta.ClaimBlob(ctx, d, size, cut)
	if err != nil || !ok {
		return 0, false, err
	}
	var freed int64
	switch err := c.blobs.Delete(ctx, d); {
	case err == nil:
		freed = size
	case errors.Is(err, blob.ErrNotFound):
		// A crash after the bytes went, or a row whose bytes were lost.
	default:
		return 0, true, fmt.Errorf("delete bytes of %s (its tombstone stays for the next run): %w", d, err)
	}
	if err := c.meta.DropBlob(ctx, d); err != nil {
		return freed, true, err
	}
	c.log.DebugContext(ctx, "gc: blob deleted", "digest", d, "size", size)
	return freed, true, nil
}

// orphanFiles deletes blob files with no row once they are older than the
// grace period: bytes committed by a push that crashed (or failed) before
// linking them, or bytes whose unsynced deletion a crash undid. They go
// through a tombstone like any other blob, so a push linking the same
// digest meanwhile is ordered against the deletion.
func (c *Collector) orphanFiles(ctx context.Context, cut time.Time, dryRun bool, r *Report) error {
	return c.blobs.Walk(ctx, func(info blob.Info) error {
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
		freed, ok, err := c.deleteBlob(ctx, info.Digest, info.Size, cut)
		if err != nil {
			return err
		}
		if ok {
			r.OrphanFiles++
			r.BytesFreed += freed
		}
		return nil
	})
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

package gc

import (
	"context"
	"crypto/rand"
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
	// UnlinkedBlobs lists tombstones (whoever holds them) and old rows
	// with no link and no reference; with a zero before, only tombstones.
	UnlinkedBlobs(ctx context.Context, before time.Time, after digest.Digest, n int) ([]meta.BlobRecord, error)
	// BlobRecord returns the row, or an error wrapping meta.ErrBlobNotFound.
	BlobRecord(ctx context.Context, d digest.Digest) (meta.BlobRecord, error)
	// ClaimBlobs makes tombstones held by claim, in one transaction, of
	// the candidates whose rows are still unlinked, unreferenced and
	// recorded before before, or that have no row (Size is recorded for
	// those), and takes over the candidates' tombstones whose lease has
	// ended; it returns the candidates claim holds now, with their rows'
	// sizes: never a tombstone another run holds.
	ClaimBlobs(ctx context.Context, cands []meta.BlobRecord, before time.Time, claim meta.Claim) ([]meta.BlobRecord, error)
	// DropBlobs removes the tombstones the run with token holds, in one
	// transaction.
	DropBlobs(ctx context.Context, token string, ds []digest.Digest) error
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
	// WalkUploads gives each upload's data with the time it was last
	// written: a PATCH in progress keeps it fresh.
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
	// session) idle for this long: neither the session updated nor its
	// data written. 0 keeps them.
	UploadExpireAfter time.Duration
	// ClaimLease is how long a run's claim on the blobs it deletes lasts
	// (0: meta.DefaultClaimLease). A run deletes the bytes of a batch only
	// in the first half of its lease; after the lease another run may take
	// the batch's tombstones over.
	ClaimLease time.Duration
}

// Snapshot makes a private copy of the metadata store for a dry run: a
// consistent image of the store at one moment, which the dry run changes
// as a real run would change the store; discard closes and removes it.
type Snapshot func(ctx context.Context) (md Meta, discard func() error, err error)

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
	// Failed counts blob files that could not be deleted; their tombstones
	// stay for a later run (and Run returns an error).
	Failed int
	// Held counts tombstones another run holds (it is deleting them, or
	// crashed and its lease has not ended yet); they are left to it.
	Held     int
	Duration time.Duration
	Passes   int // manifest sweep passes (an index frees its children for the next)
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
		slog.Int("failed", r.Failed),
		slog.Int("held", r.Held),
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
// are serialised. Runs of different Collectors (another process, a
// replica) may overlap: each holds the tombstones it claimed exclusively.
type Collector struct {
	meta  Meta
	blobs Blobs
	pol   Policy
	log   *slog.Logger
	now   func() time.Time
	// snapshot copies the metadata store for dry runs (SetSnapshot).
	snapshot Snapshot
	mu       sync.Mutex
	// retry is when the earliest tombstone the last run left (held by
	// another run, or whose bytes failed to delete) can be claimed again
	// (c.now's clock); zero if none. Guarded by mu.
	retry time.Time
	// observers are told of every run (OnRun). Guarded by mu.
	observers []func(Report, error)
}

// OnRun registers fn to be told of every Run that deletes (not dry runs,
// nor FinishTombstones, which finishes an earlier run's work): its report
// and its error, after it ends. fn runs in the run (under
// the Collector's lock), so it must be quick and must not call the
// Collector. For metrics; nil fn is ignored.
func (c *Collector) OnRun(fn func(Report, error)) {
	if fn == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.observers = append(c.observers, fn)
}

// observe tells the observers of r. Called with mu held.
func (c *Collector) observe(r Report, err error) {
	for _, fn := range c.observers {
		fn(r, err)
	}
}

// New returns a Collector over the stores. A nil logger discards.
func New(md Meta, blobs Blobs, pol Policy, logger *slog.Logger) *Collector {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if pol.ClaimLease <= 0 {
		pol.ClaimLease = meta.DefaultClaimLease
	}
	return &Collector{meta: md, blobs: blobs, pol: pol, log: logger, now: meta.ClockOf(md)}
}

// SetSnapshot gives the Collector a way to copy its metadata store, which
// dry runs need. Call it before the first Run.
func (c *Collector) SetSnapshot(snap Snapshot) { c.snapshot = snap }

// pass is one Run or FinishTombstones: its claim token, its report, and
// what it left behind.
type pass struct {
	token  string
	r      *Report
	failed error     // the first blob file that failed to delete
	retry  time.Time // see Collector.retry
}

func newPass(r *Report) *pass {
	return &pass{token: rand.Text(), r: r}
}

// leave notes a tombstone left behind that may be claimed again at t.
func (p *pass) leave(t time.Time) {
	if p.retry.IsZero() || t.Before(p.retry) {
		p.retry = t
	}
}

// end records what p left and returns its errors joined with the
// per-blob failures.
func (c *Collector) end(p *pass, errs []error) error {
	if p.r.Failed > 0 {
		errs = append(errs, fmt.Errorf("%d blob files not deleted, their tombstones stay for a later run (first: %w)", p.r.Failed, p.failed))
	}
	return errors.Join(errs...)
}

// Run collects once. A phase that fails does not stop the others, nor
// does a blob file that fails to delete (Report.Failed; its tombstone
// stays for a later run); the error joins them all. What was deleted
// stays deleted. Only the end of ctx stops the run early.
//
// With dryRun nothing is deleted and the report says what a run would
// delete now, cascades included: deleting an index frees its children
// for the next pass, a deleted subject orphans its referrers, the links
// of deleted manifests go and then their blobs. A dry run is the real run
// made on a snapshot of the metadata store (see SetSnapshot; without one
// it fails) and on a blob store that only records deletions, so its
// report is the real run's, as of the snapshot.
func (c *Collector) Run(ctx context.Context, dryRun bool) (Report, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	began := time.Now() // Duration is real time, whatever c.now says
	var (
		r   Report
		err error
	)
	if dryRun {
		r, err = c.dryRun(ctx)
	} else {
		r, c.retry, err = c.collect(ctx)
	}
	r.DryRun = dryRun
	r.Duration = time.Since(began)
	if !dryRun {
		c.observe(r, err)
		c.recordRun(ctx, r, err)
	}
	if err != nil {
		c.log.ErrorContext(ctx, "gc failed", "report", r, "err", err)
		return r, fmt.Errorf("gc: %w", err)
	}
	c.log.InfoContext(ctx, "gc finished", "report", r)
	return r, nil
}

// collect is one run over c's stores: every phase, deleting. It returns
// when the tombstones it left can be claimed again (see Collector.retry).
func (c *Collector) collect(ctx context.Context) (Report, time.Time, error) {
	start := c.now()
	var r Report
	p := newPass(&r)
	cut := start.Add(-c.pol.Grace)
	var errs []error
	phase := func(name string, fn func() error) {
		if ctx.Err() != nil {
			return
		}
		if err := fn(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	phase("manifests", func() error { return c.manifests(ctx, start, &r) })
	phase("links", func() error { return c.links(ctx, cut, &r) })
	phase("blobs", func() error { return c.blobRows(ctx, p, cut) })
	phase("orphan files", func() error { return c.orphanFiles(ctx, p, cut) })
	if c.pol.UploadExpireAfter > 0 {
		phase("uploads", func() error { return c.uploads(ctx, start.Add(-c.pol.UploadExpireAfter), &r) })
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	err := c.end(p, errs)
	return r, p.retry, err
}

// dryRun runs collect on a snapshot of the metadata store and on a blob
// store that deletes nothing. The snapshot costs a copy of the metadata
// (disk, not memory); the recorded deletions cost memory in proportion
// to the garbage, not to the store.
func (c *Collector) dryRun(ctx context.Context) (Report, error) {
	if c.snapshot == nil {
		return Report{}, errors.New("dry run: no snapshot of the metadata store to run on (Collector.SetSnapshot)")
	}
	md, discard, err := c.snapshot(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("dry run: snapshot the metadata store: %w", err)
	}
	defer func() {
		if err := discard(); err != nil {
			c.log.WarnContext(ctx, "gc dry run: discarding the snapshot", "err", err)
		}
	}()
	sim := &Collector{
		meta:  md,
		blobs: &dryBlobs{Blobs: c.blobs, deleted: map[digest.Digest]bool{}, aborted: map[string]bool{}},
		pol:   c.pol,
		log:   c.log.With("dry_run", true),
		now:   c.now,
	}
	r, _, err := sim.collect(ctx)
	return r, err
}

// dryBlobs is a blob store that records deletions instead of making them,
// and hides what it recorded from later walks (as the real deletions
// would be hidden).
type dryBlobs struct {
	Blobs
	deleted map[digest.Digest]bool
	aborted map[string]bool
}

// statter is the blob store's optional Stat, so a dry deletion of bytes
// already gone reports blob.ErrNotFound as the real one would.
type statter interface {
	Stat(ctx context.Context, d digest.Digest) (blob.Info, error)
}

func (b *dryBlobs) Delete(ctx context.Context, d digest.Digest) error {
	if b.deleted[d] {
		return blob.ErrNotFound
	}
	if st, ok := b.Blobs.(statter); ok {
		if _, err := st.Stat(ctx, d); err != nil {
			return err
		}
	}
	b.deleted[d] = true
	return nil
}

func (b *dryBlobs) Walk(ctx context.Context, fn func(blob.Info) error) error {
	return b.Blobs.Walk(ctx, func(i blob.Info) error {
		if b.deleted[i.Digest] {
			return nil
		}
		return fn(i)
	})
}

func (b *dryBlobs) WalkUploads(ctx context.Context, fn func(id string, modTime time.Time) error) error {
	return b.Blobs.WalkUploads(ctx, func(id string, mod time.Time) error {
		if b.aborted[id] {
			return nil
		}
		return fn(id, mod)
	})
}

func (b *dryBlobs) AbortUpload(_ context.Context, id string) error {
	b.aborted[id] = true
	return nil
}

// FinishTombstones finishes the deletions that a crashed run, or a blob
// file that failed to delete, left behind: it claims every tombstone whose
// lease has ended, deletes its bytes and drops it. Until then those
// tombstones refuse pushes of their blobs, so berth serve calls this once
// before it serves, and RunEvery again when a lease it saw ends.
// Tombstones another run holds are left to it (Report.Held). Report.Blobs
// counts the tombstones finished; errors are as Run's.
func (c *Collector) FinishTombstones(ctx context.Context) (Report, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	began := time.Now()
	var r Report
	p := newPass(&r)
	var errs []error
	if err := c.blobRows(ctx, p, time.Time{}); err != nil {
		errs = append(errs, err)
	}
	err := c.end(p, errs)
	c.retry = p.retry
	r.Duration = time.Since(began)
	switch {
	case err != nil:
		c.log.ErrorContext(ctx, "gc: finishing tombstones failed", "report", r, "err", err)
		return r, fmt.Errorf("gc: finish tombstones: %w", err)
	case r.Blobs > 0 || r.Held > 0:
		c.log.InfoContext(ctx, "gc: tombstones finished", "report", r)
	}
	return r, nil
}

// RunEvery runs gc every interval until ctx ends. A failed run is logged
// (by Run) and the next one is tried at the next tick. When a run leaves
// tombstones behind (held by another run, or whose bytes failed to
// delete), FinishTombstones runs again once their lease has ended, rather
// than a whole interval later.
func (c *Collector) RunEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var retry <-chan time.Time
		if at := c.retryAt(); !at.IsZero() {
			// A second's margin: a lease ending at t is taken over after t.
			retry = time.After(max(at.Sub(c.now()), 0) + time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = c.Run(ctx, false)
		case <-retry:
			_, _ = c.FinishTombstones(ctx)
		}
	}
}

// retryAt is when the tombstones the last run left can be claimed again;
// zero if it left none.
func (c *Collector) retryAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retry
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
func (c *Collector) manifests(ctx context.Context, now time.Time, r *Report) error {
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
			if err := chunks(keys, func(keys []meta.ManifestKey) error {
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
		if deleted == 0 {
			return nil
		}
	}
}

func (c *Collector) links(ctx context.Context, cut time.Time, r *Report) error {
	var after meta.LinkKey
	for {
		ls, err := c.meta.UnreferencedLinks(ctx, cut, after, page)
		if err != nil {
			return err
		}
		if err := chunks(ls, func(ls []meta.LinkKey) error {
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

// blobRows deletes unlinked blobs' rows and bytes, and finishes
// tombstones whose lease has ended. With a zero cut only tombstones are
// listed.
func (c *Collector) blobRows(ctx context.Context, p *pass, cut time.Time) error {
	r := p.r
	var after digest.Digest
	for {
		bs, err := c.meta.UnlinkedBlobs(ctx, cut, after, page)
		if err != nil {
			return err
		}
		if err := chunks(bs, func(bs []meta.BlobRecord) error {
			n, freed, err := c.deleteBlobs(ctx, p, bs, cut)
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

// deleteBlobs claims the candidates for p (tombstones their rows, puts
// tombstones where there are none, takes over tombstones whose lease has
// ended), deletes the bytes of those claimed and drops their tombstones.
// It reports how many it deleted and the bytes freed; the error is the
// store's. Once a batch is claimed it is finished even if ctx ends: its
// tombstones would otherwise refuse pushes of those blobs for a lease.
// But no bytes are deleted after half the lease (by this process's clock,
// from before the claim), since another run may take the tombstones over
// once it ends: those left, and those whose bytes fail to delete
// (Report.Failed, logged), keep their tombstones for a later run.
func (c *Collector) deleteBlobs(ctx context.Context, p *pass, cands []meta.BlobRecord, cut time.Time) (int, int64, error) {
	began := time.Now()
	claim := meta.Claim{Token: p.token, At: c.now(), Lease: c.pol.ClaimLease}
	claimed, err := c.meta.ClaimBlobs(ctx, cands, cut, claim)
	if err != nil {
		return 0, 0, err
	}
	mine := make(map[digest.Digest]bool, len(claimed))
	for _, b := range claimed {
		mine[b.Digest] = true
	}
	for _, b := range cands {
		if b.Deleting && !mine[b.Digest] {
			p.r.Held++
			p.leave(b.ClaimExpires)
			c.log.DebugContext(ctx, "gc: tombstone held by another run", "digest", b.Digest, "until", b.ClaimExpires)
		}
	}
	if len(claimed) == 0 {
		return 0, 0, nil
	}
	ctx = context.WithoutCancel(ctx)
	deadline := began.Add(c.pol.ClaimLease / 2)
	var (
		gone  = make([]digest.Digest, 0, len(claimed))
		freed int64
	)
	for i, b := range claimed {
		if time.Now().After(deadline) {
			c.log.WarnContext(ctx, "gc: half the claim lease is gone; tombstones left for a later run",
				"left", len(claimed)-i, "lease", c.pol.ClaimLease)
			p.leave(claim.At.Add(claim.Lease))
			break
		}
		switch err := c.blobs.Delete(ctx, b.Digest); {
		case err == nil:
			freed += b.Size
		case errors.Is(err, blob.ErrNotFound):
			// A crash after the bytes went, or a row whose bytes were lost.
		default:
			p.r.Failed++
			if p.failed == nil {
				p.failed = fmt.Errorf("delete bytes of %s: %w", b.Digest, err)
			}
			p.leave(claim.At.Add(claim.Lease))
			c.log.WarnContext(ctx, "gc: blob file not deleted; its tombstone stays for a later run", "digest", b.Digest, "err", err)
			continue
		}
		gone = append(gone, b.Digest)
		c.log.DebugContext(ctx, "gc: blob deleted", "digest", b.Digest, "size", b.Size)
	}
	if err := c.meta.DropBlobs(ctx, p.token, gone); err != nil {
		p.leave(claim.At.Add(claim.Lease))
		return 0, freed, err
	}
	return len(gone), freed, nil
}

// orphanFiles deletes blob files with no row once they are older than the
// grace period: bytes committed by a push that crashed (or failed) before
// linking them, or bytes whose unsynced deletion a crash undid. They go
// through tombstones like any other blob, a batch at a time, so a push
// linking the same digest meanwhile is ordered against the deletion.
func (c *Collector) orphanFiles(ctx context.Context, p *pass, cut time.Time) error {
	r := p.r
	var orphans []meta.BlobRecord
	flush := func() error {
		n, freed, err := c.deleteBlobs(ctx, p, orphans, cut)
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

// uploads expires sessions idle since cut, and removes upload data without
// a session written before cut. A session's updated time changes only when
// a request on it finishes, so a PATCH streaming for longer than the
// expiry, or one that has just resumed an old session, would lose its
// session and data mid-request: a session whose data was written since
// cut is not idle, and stays.
func (c *Collector) uploads(ctx context.Context, cut time.Time, r *Report) error {
	after := ""
	for {
		ids, err := c.meta.ExpiredUploads(ctx, cut, after, page)
		if err != nil {
			return err
		}
		writing, err := c.writtenSince(ctx, ids, cut)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if writing[id] {
				c.log.DebugContext(ctx, "gc: upload session idle, but its data is being written: kept", "upload", id)
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
		if err := c.blobs.AbortUpload(ctx, id); err != nil {
			return fmt.Errorf("remove upload data %s: %w", id, err)
		}
		return nil
	})
}

// writtenSince returns which of the uploads ids had data written at or
// after cut.
func (c *Collector) writtenSince(ctx context.Context, ids []string, cut time.Time) (map[string]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	writing := map[string]bool{}
	err := c.blobs.WalkUploads(ctx, func(id string, mod time.Time) error {
		if want[id] && !mod.Before(cut) {
			writing[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("upload data times: %w", err)
	}
	return writing, nil
}

// Package fsck checks that Berth's metadata and blob bytes agree: every
// blob file hashes to its name and has its recorded size, every link and
// every manifest's blob reference has bytes.
//
// # Damage and pending collection
//
// Some states are what serve and gc leave in flight, or after a crash, and
// gc collects them: a blob file without a row (a push between its commit
// and its link, or one killed there), upload data without a session, a gc
// tombstone whose run crashed (its lease ended). fsck reports these as
// "pending collection" (Problem.Pending) and does not count them
// (Report.Unrepaired), so a check after a kill -9 exits 0. A tombstone
// within its lease and the upload data of a live session are in flight
// and not reported at all. A check re-reads the metadata before it calls
// a missing file damage, so a gc or a push running meanwhile is not
// reported either.
//
// # Repair
//
// With repair, fsck removes what nothing references (orphan files, upload
// data without a session, links and rows whose bytes are missing,
// interrupted gc deletions), through the same tombstone protocol as package
// gc, with claims of its own, so it is safe while the registry serves and
// gc runs. While serve may run it leaves leftovers younger than
// Options.Grace alone (a push may be about to link them). With
// Options.Exclusive (the caller holds berth serve's lock, so nothing
// serves) it removes leftovers of any age.
//
// A blob a manifest references whose bytes are missing or corrupt cannot
// be repaired in place: the bytes exist nowhere else. Only with Exclusive
// and a Options.Quarantine directory, fsck moves the corrupt bytes to
// quarantine/blobs/<algorithm>/<hex>, saves each manifest that references
// the blob as quarantine/manifests/<repo>/<algorithm>-<hex>.json (its
// repository, digest, media type and exact bytes) and deletes those
// manifests (their tags go with them; the manifest.delete event lists
// them), then the blob's links and row. The store is consistent again
// (a pull of such a tag answers MANIFEST_UNKNOWN instead of serving bytes
// that fail verification), nothing is destroyed, and pushing the image
// again restores it. Without Exclusive such a blob is reported and left.
package fsck

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/meta"
)

// Meta is what fsck needs of the metadata store.
type Meta interface {
	BlobRecord(ctx context.Context, d digest.Digest) (meta.BlobRecord, error)
	BlobRecords(ctx context.Context, after digest.Digest, n int) ([]meta.BlobRecord, error)
	Links(ctx context.Context, after meta.LinkKey, n int) ([]meta.LinkKey, error)
	BlobRefs(ctx context.Context, after meta.BlobRef, n int) ([]meta.BlobRef, error)
	// SweepLinks removes links no manifest references (repairs pass one).
	SweepLinks(ctx context.Context, keys []meta.LinkKey, before time.Time) (int, error)
	// ClaimBlobs makes blobs tombstones held by claim, as gc does (see
	// meta.Claim): never one another run holds within its lease.
	ClaimBlobs(ctx context.Context, cands []meta.BlobRecord, before time.Time, claim meta.Claim) ([]meta.BlobRecord, error)
	// DropBlobs removes the tombstones the run with token holds.
	DropBlobs(ctx context.Context, token string, ds []digest.Digest) error
	// BlobLink re-checks a link (meta.ErrBlobNotFound if it is gone).
	BlobLink(ctx context.Context, repo string, d digest.Digest) (int64, error)
	LinkingRepositories(ctx context.Context, d digest.Digest, after string, n int) ([]string, error)
	GetManifest(ctx context.Context, repo string, d digest.Digest) (*meta.Manifest, error)
	// DeleteManifest is used only to quarantine a manifest whose blob is
	// lost (Options.Exclusive).
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) error
	// UploadKnown reports whether an upload session exists.
	UploadKnown(ctx context.Context, id string) (bool, error)
}

// Blobs is what fsck needs of the blob store.
type Blobs interface {
	blob.Provider
	Walk(ctx context.Context, fn func(blob.Info) error) error
	Delete(ctx context.Context, d digest.Digest) error
	WalkUploads(ctx context.Context, fn func(id string, modTime time.Time) error) error
	AbortUpload(ctx context.Context, id string) error
}

// Kind classifies a problem.
type Kind string

// The problems fsck finds.
const (
	Corrupt      Kind = "corrupt"       // bytes do not hash to their digest
	WrongSize    Kind = "wrong-size"    // file size differs from the row's
	OrphanFile   Kind = "orphan-file"   // bytes with no row (pending collection)
	UploadData   Kind = "upload-data"   // upload data with no session (pending collection)
	MissingBytes Kind = "missing-bytes" // a row whose bytes are missing
	DanglingLink Kind = "dangling-link" // a link to missing bytes
	MissingBlob  Kind = "missing-blob"  // a manifest references missing bytes
	Tombstone    Kind = "tombstone"     // an interrupted gc deletion, its lease ended (pending collection)
)

// Problem is one inconsistency.
type Problem struct {
	Kind     Kind
	Digest   digest.Digest
	Repo     string        // links and manifests
	Manifest digest.Digest // MissingBlob
	Upload   string        // UploadData: the upload id
	Detail   string
	Repaired bool
	// Pending marks garbage gc collects (a crash's or a push's leftover),
	// not damage: reported, never counted by Unrepaired.
	Pending bool
}

func (p Problem) String() string {
	s := fmt.Sprintf("%s %s", p.Kind, p.Digest)
	if p.Upload != "" {
		s = fmt.Sprintf("%s %s", p.Kind, p.Upload)
	}
	if p.Repo != "" {
		s += " in " + p.Repo
	}
	if p.Manifest != "" {
		s += " (manifest " + p.Manifest.String() + ")"
	}
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	if p.Repaired {
		s += " [repaired]"
	}
	if p.Pending {
		// Not a line that starts with a kind: scripts that list damage by
		// its kind skip it.
		s = "pending collection: " + s
	}
	return s
}

// Report is the result of a check.
type Report struct {
	Blobs    int   // blob files verified
	Bytes    int64 // bytes hashed
	Problems []Problem
	Duration time.Duration
}

// Unrepaired counts the problems left: damage, not pending collection.
func (r Report) Unrepaired() int {
	n := 0
	for _, p := range r.Problems {
		if !p.Repaired && !p.Pending {
			n++
		}
	}
	return n
}

// Options control a check.
type Options struct {
	// Repair removes what nothing references.
	Repair bool
	// Grace leaves orphan files and upload data younger than this alone
	// (a push between its commit and its link), unless Exclusive.
	Grace time.Duration
	// Exclusive says no server uses the stores (the caller holds berth
	// serve's lock): leftovers of any age are a crash's, and repair
	// removes them; a referenced blob whose bytes are lost is quarantined
	// (see the package doc) if Quarantine is set.
	Exclusive bool
	// Quarantine is the directory repairs move lost blobs' bytes and
	// manifests to ("" leaves them, reported).
	Quarantine string
	// Progress, if not nil, receives a progress line now and then (a
	// terminal: lines start with \r).
	Progress io.Writer
	// ClaimLease is the lease of the claims repairs take (0:
	// meta.DefaultClaimLease).
	ClaimLease time.Duration
}

const page = 1000

// future is a time after anything recorded: repairs are not bound by age.
var future = time.Unix(0, math.MaxInt64)

// Checker runs checks. It holds no state between them.
type Checker struct {
	meta  Meta
	blobs Blobs
	log   *slog.Logger
	// now is the metadata store's clock (meta.Clock), which gc's claims
	// and grace use too.
	now func() time.Time
}

// New returns a Checker over the stores. A nil logger discards.
func New(md Meta, blobs Blobs, logger *slog.Logger) *Checker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Checker{meta: md, blobs: blobs, log: logger, now: meta.ClockOf(md)}
}

// Check verifies the stores. The error is for failures to check (I/O,
// cancellation); inconsistencies are in the report.
func (c *Checker) Check(ctx context.Context, opts Options) (Report, error) {
	start := time.Now()
	r := Report{}
	if opts.ClaimLease <= 0 {
		opts.ClaimLease = meta.DefaultClaimLease
	}
	run := &run{c: c, opts: opts, r: &r, cut: c.now().Add(-opts.Grace), buf: make([]byte, 1<<20), token: rand.Text(),
		leftAlone: fmt.Sprintf("younger than the grace (%s) while berth serve may be running: left for gc", opts.Grace)}
	err := run.files(ctx)
	if err == nil {
		err = run.uploads(ctx)
	}
	if err == nil {
		err = run.links(ctx)
	}
	if err == nil {
		err = run.rows(ctx)
	}
	if err == nil {
		err = run.refs(ctx)
	}
	if err == nil {
		err = run.deltas(ctx)
	}
	run.progress(true)
	r.Duration = time.Since(start)
	if err != nil {
		return r, fmt.Errorf("fsck: %w", err)
	}
	c.log.InfoContext(ctx, "fsck finished", "blobs", r.Blobs, "bytes", r.Bytes,
		"problems", len(r.Problems), "unrepaired", r.Unrepaired(), "duration", r.Duration)
	return r, nil
}

type run struct {
	c     *Checker
	opts  Options
	r     *Report
	cut   time.Time
	buf   []byte
	last  time.Time
	token string // the claim token of this check's repairs
	// leftAlone explains why a recent leftover is not removed.
	leftAlone string
}

func (x *run) add(p Problem) {
	x.r.Problems = append(x.r.Problems, p)
	if p.Pending {
		x.c.log.Info("fsck: pending collection: "+string(p.Kind), "digest", p.Digest, "detail", p.Detail, "repaired", p.Repaired)
		return
	}
	x.c.log.Warn("fsck: "+string(p.Kind), "digest", p.Digest, "repo", p.Repo, "detail", p.Detail, "repaired", p.Repaired)
}

func (x *run) progress(final bool) {
	if x.opts.Progress == nil || (!final && time.Since(x.last) < 200*time.Millisecond) {
		return
	}
	x.last = time.Now()
	fmt.Fprintf(x.opts.Progress, "\rfsck: %d blobs, %.1f MB verified", x.r.Blobs, float64(x.r.Bytes)/1e6)
	if final {
		fmt.Fprintln(x.opts.Progress)
	}
}

// files verifies every blob file: its hash, its size against its row, and
// that it has a row.
func (x *run) files(ctx context.Context) error {
	return x.c.blobs.Walk(ctx, func(info blob.Info) error {
		n, got, err := x.hash(ctx, info.Digest)
		if errors.Is(err, blob.ErrNotFound) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		x.r.Blobs++
		x.r.Bytes += n
		x.progress(false)
		rec, rerr := x.c.meta.BlobRecord(ctx, info.Digest)
		norow := errors.Is(rerr, meta.ErrBlobNotFound)
		if rerr != nil && !norow {
			return rerr
		}
		switch {
		case got != info.Digest:
			p := Problem{Kind: Corrupt, Digest: info.Digest, Detail: fmt.Sprintf("%d bytes hash to %s", n, got)}
			if norow || rec.Deleting {
				x.removeUnreferenced(ctx, &p, info.Size, future, notClaimed)
			} else {
				x.removeLost(ctx, &p, rec.Size, true)
			}
			x.add(p)
		case !norow && !rec.Deleting && rec.Size != n:
			x.add(Problem{Kind: WrongSize, Digest: info.Digest, Detail: fmt.Sprintf("file has %d bytes, row says %d", n, rec.Size)})
		case norow:
			// A push between its commit and its link, or one a crash
			// stopped there: garbage gc collects, not damage.
			p := Problem{Kind: OrphanFile, Digest: info.Digest, Detail: fmt.Sprintf("%d bytes", n), Pending: true}
			switch {
			case !x.opts.Repair:
			case x.recent(info.ModTime):
				p.Detail += "; " + x.leftAlone
			case x.opts.Exclusive:
				x.removeUnreferenced(ctx, &p, info.Size, future, notClaimed)
			default:
				x.removeUnreferenced(ctx, &p, info.Size, x.cut, notClaimed)
			}
			x.add(p)
		}
		return nil
	})
}

// recent reports whether a leftover modified at t may still be a push's
// (its commit before its link): never when no server runs.
func (x *run) recent(t time.Time) bool {
	return !x.opts.Exclusive && t.After(x.cut)
}

// uploads reports upload data without a session (a crash between the two,
// or a session expired meanwhile): pending collection, which repair
// removes as orphan files. The data of a live session is an upload in
// progress, resumable across a restart: not reported, never removed (gc
// expires idle sessions).
func (x *run) uploads(ctx context.Context) error {
	return x.c.blobs.WalkUploads(ctx, func(id string, mod time.Time) error {
		known, err := x.c.meta.UploadKnown(ctx, id)
		if err != nil || known {
			return err
		}
		p := Problem{Kind: UploadData, Upload: id, Detail: "data without a session", Pending: true}
		switch {
		case !x.opts.Repair:
		case x.recent(mod):
			p.Detail += "; " + x.leftAlone
		default:
			if err := x.c.blobs.AbortUpload(ctx, id); err != nil {
				p.Detail += "; repair failed: " + err.Error()
			} else {
				p.Repaired = true
			}
		}
		x.add(p)
		return nil
	})
}

// hash streams the blob through its digest's hash.
func (x *run) hash(ctx context.Context, d digest.Digest) (int64, digest.Digest, error) {
	if err := blob.ValidateDigest(d); err != nil {
		return 0, "", fmt.Errorf("blob %s: %w", d, err)
	}
	h := d.Algorithm().Hash()
	f, err := x.c.blobs.Open(ctx, d)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, "", err
		}
		m, err := f.Read(x.buf)
		h.Write(x.buf[:m])
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, "", fmt.Errorf("read blob %s: %w", d, err)
		}
	}
	return n, digest.NewDigest(d.Algorithm(), h), nil
}

// notClaimed is removeUnreferenced's explanation when the claim fails for
// a blob that is not a tombstone.
const notClaimed = "the blob is linked or referenced (push it again after removing the file by hand)"

// removeUnreferenced deletes d's bytes and row, through a tombstone held
// by this check, if nothing links or references it; else it says why it
// cannot (why, if the claim fails).
func (x *run) removeUnreferenced(ctx context.Context, p *Problem, size int64, before time.Time, why string) {
	if !x.opts.Repair {
		return
	}
	began := x.c.now()
	claim := meta.Claim{Token: x.token, At: began, Lease: x.opts.ClaimLease}
	claimed, err := x.c.meta.ClaimBlobs(ctx, []meta.BlobRecord{{Digest: p.Digest, Size: size}}, before, claim)
	switch {
	case err != nil:
		p.Detail += "; repair failed: " + err.Error()
		return
	case len(claimed) != 1:
		p.Detail += "; not repaired: " + why
		return
	case x.c.now().Sub(began) > claim.Lease/2:
		// As gc: past half the lease another run may soon take the
		// tombstone over; it finishes the deletion.
		p.Detail += "; not repaired: the claim took too long (a later gc run finishes it)"
		return
	}
	if err := x.c.blobs.Delete(ctx, p.Digest); err != nil && !errors.Is(err, blob.ErrNotFound) {
		p.Detail += "; repair failed: " + err.Error()
		return
	}
	if err := x.c.meta.DropBlobs(ctx, x.token, []digest.Digest{p.Digest}); err != nil {
		p.Detail += "; repair failed: " + err.Error()
		return
	}
	p.Repaired = true
}

func (x *run) exists(ctx context.Context, d digest.Digest) (bool, error) {
	_, err := x.c.blobs.Stat(ctx, d)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, blob.ErrNotFound):
		return false, nil
	}
	return false, err
}

// lost reports whether d's bytes are missing while held says what
// needs them (a link, a manifest, a row) still exists. A missing file is
// damage only if it stays missing: it is checked as stat, row, stat, then
// held. gc deletes bytes only under a tombstone and after the links and
// manifests are gone, and a push commits the file before it links it, so
// neither in flight meanwhile is reported.
func (x *run) lost(ctx context.Context, d digest.Digest, held func() (bool, error)) (bool, error) {
	if ok, err := x.exists(ctx, d); err != nil || ok {
		return false, err
	}
	rec, err := x.c.meta.BlobRecord(ctx, d)
	switch {
	case errors.Is(err, meta.ErrBlobNotFound):
		// Dropped by gc meanwhile, or lost with its bytes: held decides.
	case err != nil:
		return false, err
	case rec.Deleting:
		return false, nil // gc is deleting it (or finishes a crashed run's deletion)
	}
	if ok, err := x.exists(ctx, d); err != nil || ok {
		return false, err
	}
	return held()
}

// pendingUnlessReferenced marks p, a link or row whose bytes are
// missing, pending collection if no manifest references the blob: a push
// whose bytes gc deleted under it links them, sees them gone and fails
// (registry.linkCommitted), leaving the link for gc to sweep; no image
// lost anything.
func (x *run) pendingUnlessReferenced(ctx context.Context, p *Problem) error {
	rs, err := x.c.meta.BlobRefs(ctx, meta.BlobRef{Digest: p.Digest}, 1)
	if err != nil {
		return err
	}
	if len(rs) == 0 || rs[0].Digest != p.Digest {
		p.Pending = true
		p.Detail = "no manifest references it (a failed push's link: gc sweeps it)"
	}
	return nil
}

// links reports links to missing bytes; repair removes those no manifest
// of the repository references (and, with Exclusive, quarantines those a
// manifest references: see removeLost).
func (x *run) links(ctx context.Context) error {
	var after meta.LinkKey
	for {
		ls, err := x.c.meta.Links(ctx, after, page)
		if err != nil {
			return err
		}
		for _, l := range ls {
			lost, err := x.lost(ctx, l.Digest, func() (bool, error) {
				_, err := x.c.meta.BlobLink(ctx, l.Repo, l.Digest)
				if errors.Is(err, meta.ErrBlobNotFound) {
					return false, nil // swept meanwhile
				}
				return err == nil, err
			})
			if err != nil {
				return err
			}
			if !lost {
				continue
			}
			p := Problem{Kind: DanglingLink, Digest: l.Digest, Repo: l.Repo}
			if err := x.pendingUnlessReferenced(ctx, &p); err != nil {
				return err
			}
			if x.opts.Repair {
				n, err := x.c.meta.SweepLinks(ctx, []meta.LinkKey{l}, future)
				switch {
				case err != nil:
					p.Detail = "repair failed: " + err.Error()
				case n == 1:
					p.Repaired = true
				default:
					p.Detail = "a manifest references it (or gc swept it meanwhile)"
					var size int64
					if rec, err := x.c.meta.BlobRecord(ctx, l.Digest); err == nil {
						size = rec.Size
					}
					x.removeLost(ctx, &p, size, false)
				}
			}
			x.add(p)
		}
		if len(ls) < page {
			return nil
		}
		after = ls[len(ls)-1]
	}
}

// rows reports rows whose bytes are missing; repair removes those nothing
// links or references, and finishes interrupted gc deletions. A tombstone
// within its lease is a deletion in progress (or one whose run crashed
// moments ago, which a later run finishes), not a problem; one whose lease
// ended is a crashed run's, pending collection.
func (x *run) rows(ctx context.Context) error {
	var after digest.Digest
	for {
		bs, err := x.c.meta.BlobRecords(ctx, after, page)
		if err != nil {
			return err
		}
		for _, b := range bs {
			switch {
			case b.Deleting && !b.ClaimExpires.Before(x.c.now()):
				x.c.log.InfoContext(ctx, "fsck: blob being deleted by gc", "digest", b.Digest, "lease_until", b.ClaimExpires)
				continue
			case b.Deleting:
				p := Problem{Kind: Tombstone, Digest: b.Digest, Detail: "gc deletion interrupted", Pending: true}
				x.removeUnreferenced(ctx, &p, b.Size, future, "another run took it over")
				x.add(p)
				continue
			}
			lost, err := x.lost(ctx, b.Digest, func() (bool, error) {
				rec, err := x.c.meta.BlobRecord(ctx, b.Digest)
				if errors.Is(err, meta.ErrBlobNotFound) {
					return false, nil
				}
				return err == nil && !rec.Deleting, err
			})
			if err != nil {
				return err
			}
			if lost {
				p := Problem{Kind: MissingBytes, Digest: b.Digest}
				if err := x.pendingUnlessReferenced(ctx, &p); err != nil {
					return err
				}
				x.removeLost(ctx, &p, b.Size, false)
				x.add(p)
			}
		}
		if len(bs) < page {
			return nil
		}
		after = bs[len(bs)-1].Digest
	}
}

// refs reports manifests whose RefBlob references have no bytes. Only
// Exclusive repairs quarantine them (rows and links did, if they could);
// else the blob must be pushed again.
func (x *run) refs(ctx context.Context) error {
	var after meta.BlobRef
	for {
		rs, err := x.c.meta.BlobRefs(ctx, after, page)
		if err != nil {
			return err
		}
		for _, ref := range rs {
			lost, err := x.lost(ctx, ref.Digest, func() (bool, error) {
				_, err := x.c.meta.GetManifest(ctx, ref.Manifest.Repo, ref.Manifest.Digest)
				if errors.Is(err, meta.ErrManifestNotFound) {
					return false, nil // deleted meanwhile
				}
				return err == nil, err
			})
			if err != nil {
				return err
			}
			if lost {
				x.add(Problem{Kind: MissingBlob, Digest: ref.Digest, Repo: ref.Manifest.Repo, Manifest: ref.Manifest.Digest,
					Detail: "not repairable while berth serve may run: stop it and run fsck --repair, or push the blob again"})
			}
		}
		if len(rs) < page {
			return nil
		}
		after = rs[len(rs)-1]
	}
}

// removeLost repairs a blob whose bytes are missing or corrupt (row and,
// perhaps, links and manifests still there). Without Exclusive and
// Quarantine it removes it only if nothing links or references it. With
// them (nothing serves, so no push can be referencing it meanwhile) it
// moves corrupt bytes and every manifest that references the blob to the
// quarantine directory, deletes those manifests, sweeps the blob's links
// and removes its row: the package doc says why.
func (x *run) removeLost(ctx context.Context, p *Problem, size int64, corrupt bool) {
	if !x.opts.Repair {
		return
	}
	if !x.opts.Exclusive || x.opts.Quarantine == "" {
		why := notClaimed
		if corrupt {
			why = "the blob is linked or referenced; stop berth serve and run fsck --repair to quarantine it, or push it again"
		}
		x.removeUnreferenced(ctx, p, size, future, why)
		return
	}
	if corrupt {
		if err := x.quarantineBytes(ctx, p.Digest); err != nil {
			p.Detail += "; repair failed: " + err.Error()
			return
		}
	}
	saved, err := x.quarantineManifests(ctx, p.Digest)
	if err != nil {
		p.Detail += "; repair failed: " + err.Error()
		return
	}
	if err := x.sweepLinks(ctx, p.Digest); err != nil {
		p.Detail += "; repair failed: " + err.Error()
		return
	}
	x.removeUnreferenced(ctx, p, size, future, notClaimed)
	if p.Repaired && (corrupt || len(saved) > 0) {
		p.Detail += fmt.Sprintf("; quarantined in %s", x.opts.Quarantine)
		if len(saved) > 0 {
			p.Detail += fmt.Sprintf(", manifests removed: %s (push them again)", strings.Join(saved, ", "))
		}
	}
}

// quarantineBytes copies d's file to Quarantine/blobs/<alg>/<hex>.
func (x *run) quarantineBytes(ctx context.Context, d digest.Digest) error {
	f, err := x.c.blobs.Open(ctx, d)
	if errors.Is(err, blob.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return writeQuarantine(filepath.Join(x.opts.Quarantine, "blobs", string(d.Algorithm()), d.Encoded()), f)
}

// quarantined is a manifest saved by a repair: enough to push it again.
type quarantined struct {
	Repo      string        `json:"repository"`
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
	Content   []byte        `json:"content"` // the exact bytes (base64)
	Reason    string        `json:"reason"`
}

// quarantineManifests saves and deletes every manifest that references d,
// returning them as repo@digest.
func (x *run) quarantineManifests(ctx context.Context, d digest.Digest) ([]string, error) {
	var refs []meta.BlobRef
	after := meta.BlobRef{Digest: d}
	for {
		rs, err := x.c.meta.BlobRefs(ctx, after, page)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if r.Digest == d {
				refs = append(refs, r)
			}
		}
		if len(rs) < page || rs[len(rs)-1].Digest != d {
			break
		}
		after = rs[len(rs)-1]
	}
	var saved []string
	for _, r := range refs {
		m, err := x.c.meta.GetManifest(ctx, r.Manifest.Repo, r.Manifest.Digest)
		if errors.Is(err, meta.ErrManifestNotFound) {
			continue
		}
		if err != nil {
			return saved, err
		}
		b, err := json.MarshalIndent(quarantined{Repo: m.Repo, Digest: m.Digest, MediaType: m.MediaType, Content: m.Content,
			Reason: "references blob " + d.String() + ", whose bytes were lost or corrupt"}, "", "  ")
		if err != nil {
			return saved, err
		}
		name := filepath.Join(x.opts.Quarantine, "manifests", filepath.FromSlash(m.Repo), string(m.Digest.Algorithm())+"-"+m.Digest.Encoded()+".json")
		if err := writeQuarantine(name, bytes.NewReader(b)); err != nil {
			return saved, err
		}
		if err := x.c.meta.DeleteManifest(ctx, m.Repo, m.Digest); err != nil && !errors.Is(err, meta.ErrManifestNotFound) {
			return saved, err
		}
		saved = append(saved, m.Repo+"@"+m.Digest.String())
	}
	return saved, nil
}

// sweepLinks removes every link to d (none is referenced any more).
func (x *run) sweepLinks(ctx context.Context, d digest.Digest) error {
	for {
		repos, err := x.c.meta.LinkingRepositories(ctx, d, "", page)
		if err != nil {
			return err
		}
		keys := make([]meta.LinkKey, len(repos))
		for i, repo := range repos {
			keys[i] = meta.LinkKey{Repo: repo, Digest: d}
		}
		if _, err := x.c.meta.SweepLinks(ctx, keys, future); err != nil {
			return err
		}
		if len(repos) < page {
			return nil
		}
	}
}

// writeQuarantine writes r to name durably (temporary file, sync, rename).
func writeQuarantine(name string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o750); err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), ".quarantine-*")
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	_, err = io.Copy(tmp, r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("quarantine %s: %w", name, err)
	}
	return nil
}

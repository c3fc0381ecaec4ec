// Package fsck checks that Berth's metadata and blob bytes agree: every
// blob file hashes to its name and has its recorded size, every link and
// every manifest's blob reference has bytes, and every file has a row.
// With repair it removes what nothing references (orphan files, links and
// rows whose bytes are missing, interrupted gc deletions), through the same
// tombstone protocol as package gc, with claims of its own, so it is safe
// while the registry serves and gc runs. It never deletes a blob a manifest references, and reports what
// it cannot repair.
package fsck

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math"
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
	SweepLink(ctx context.Context, key meta.LinkKey, before time.Time) (bool, error)
	// ClaimBlob makes d a tombstone held by claim, as gc does (see
	// meta.Claim): never one another run holds within its lease.
	ClaimBlob(ctx context.Context, d digest.Digest, size int64, before time.Time, claim meta.Claim) (bool, error)
	// DropBlob removes d's tombstone if the run with token holds it.
	DropBlob(ctx context.Context, token string, d digest.Digest) error
}

// Blobs is what fsck needs of the blob store.
type Blobs interface {
	blob.Provider
	Walk(ctx context.Context, fn func(blob.Info) error) error
	Delete(ctx context.Context, d digest.Digest) error
}

// Kind classifies a problem.
type Kind string

// The problems fsck finds.
const (
	Corrupt      Kind = "corrupt"       // bytes do not hash to their digest
	WrongSize    Kind = "wrong-size"    // file size differs from the row's
	OrphanFile   Kind = "orphan-file"   // bytes with no row
	MissingBytes Kind = "missing-bytes" // a row whose bytes are missing
	DanglingLink Kind = "dangling-link" // a link to missing bytes
	MissingBlob  Kind = "missing-blob"  // a manifest references missing bytes
	Tombstone    Kind = "tombstone"     // an interrupted gc deletion (its lease ended)
)

// Problem is one inconsistency.
type Problem struct {
	Kind     Kind
	Digest   digest.Digest
	Repo     string        // links and manifests
	Manifest digest.Digest // MissingBlob
	Detail   string
	Repaired bool
}

func (p Problem) String() string {
	s := fmt.Sprintf("%s %s", p.Kind, p.Digest)
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
	return s
}

// Report is the result of a check.
type Report struct {
	Blobs    int   // blob files verified
	Bytes    int64 // bytes hashed
	Problems []Problem
	Duration time.Duration
}

// Unrepaired counts the problems left.
func (r Report) Unrepaired() int {
	n := 0
	for _, p := range r.Problems {
		if !p.Repaired {
			n++
		}
	}
	return n
}

// Options control a check.
type Options struct {
	// Repair removes what nothing references.
	Repair bool
	// Grace leaves orphan files younger than this alone (a push between
	// its commit and its link).
	Grace time.Duration
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
}

// New returns a Checker over the stores. A nil logger discards.
func New(md Meta, blobs Blobs, logger *slog.Logger) *Checker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Checker{meta: md, blobs: blobs, log: logger}
}

// Check verifies the stores. The error is for failures to check (I/O,
// cancellation); inconsistencies are in the report.
func (c *Checker) Check(ctx context.Context, opts Options) (Report, error) {
	start := time.Now()
	r := Report{}
	if opts.ClaimLease <= 0 {
		opts.ClaimLease = meta.DefaultClaimLease
	}
	run := &run{c: c, opts: opts, r: &r, cut: start.Add(-opts.Grace), buf: make([]byte, 1<<20), token: rand.Text()}
	err := run.files(ctx)
	if err == nil {
		err = run.links(ctx)
	}
	if err == nil {
		err = run.rows(ctx)
	}
	if err == nil {
		err = run.refs(ctx)
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
}

func (x *run) add(p Problem) {
	x.r.Problems = append(x.r.Problems, p)
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
			x.removeUnreferenced(ctx, &p, info.Size, future, notClaimed)
			x.add(p)
		case !norow && !rec.Deleting && rec.Size != n:
			x.add(Problem{Kind: WrongSize, Digest: info.Digest, Detail: fmt.Sprintf("file has %d bytes, row says %d", n, rec.Size)})
		case norow:
			p := Problem{Kind: OrphanFile, Digest: info.Digest, Detail: fmt.Sprintf("%d bytes", n)}
			if info.ModTime.After(x.cut) {
				p.Detail += ", recent (a push in progress?): left alone"
			} else {
				x.removeUnreferenced(ctx, &p, info.Size, x.cut, notClaimed)
			}
			x.add(p)
		}
		return nil
	})
}

// hash streams the blob through its digest's hash.
func (x *run) hash(ctx context.Context, d digest.Digest) (int64, digest.Digest, error) {
	var h hash.Hash
	switch d.Algorithm() {
	case digest.SHA256:
		h = sha256.New()
	case digest.SHA512:
		h = sha512.New()
	default:
		return 0, "", fmt.Errorf("blob %s: unsupported algorithm", d)
	}
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
	began := time.Now()
	claim := meta.Claim{Token: x.token, At: began, Lease: x.opts.ClaimLease}
	ok, err := x.c.meta.ClaimBlob(ctx, p.Digest, size, before, claim)
	switch {
	case err != nil:
		p.Detail += "; repair failed: " + err.Error()
		return
	case !ok:
		p.Detail += "; not repaired: " + why
		return
	case time.Since(began) > claim.Lease/2:
		// As gc: past half the lease another run may soon take the
		// tombstone over; it finishes the deletion.
		p.Detail += "; not repaired: the claim took too long (a later gc run finishes it)"
		return
	}
	if err := x.c.blobs.Delete(ctx, p.Digest); err != nil && !errors.Is(err, blob.ErrNotFound) {
		p.Detail += "; repair failed: " + err.Error()
		return
	}
	if err := x.c.meta.DropBlob(ctx, x.token, p.Digest); err != nil {
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

// links reports links to missing bytes; repair removes those no manifest
// of the repository references.
func (x *run) links(ctx context.Context) error {
	var after meta.LinkKey
	for {
		ls, err := x.c.meta.Links(ctx, after, page)
		if err != nil {
			return err
		}
		for _, l := range ls {
			ok, err := x.exists(ctx, l.Digest)
			if err != nil || ok {
				if err != nil {
					return err
				}
				continue
			}
			p := Problem{Kind: DanglingLink, Digest: l.Digest, Repo: l.Repo}
			if x.opts.Repair {
				swept, err := x.c.meta.SweepLink(ctx, l, future)
				switch {
				case err != nil:
					p.Detail = "repair failed: " + err.Error()
				case swept:
					p.Repaired = true
				default:
					p.Detail = "not repaired: a manifest references it; push the blob again"
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
// moments ago, which a later run finishes), not a problem.
func (x *run) rows(ctx context.Context) error {
	var after digest.Digest
	for {
		bs, err := x.c.meta.BlobRecords(ctx, after, page)
		if err != nil {
			return err
		}
		for _, b := range bs {
			ok, err := x.exists(ctx, b.Digest)
			if err != nil {
				return err
			}
			switch {
			case b.Deleting && !b.ClaimExpires.Before(time.Now()):
				x.c.log.InfoContext(ctx, "fsck: blob being deleted by gc", "digest", b.Digest, "lease_until", b.ClaimExpires)
			case b.Deleting:
				p := Problem{Kind: Tombstone, Digest: b.Digest, Detail: "gc deletion interrupted"}
				x.removeUnreferenced(ctx, &p, b.Size, future, "another run took it over")
				x.add(p)
			case !ok:
				p := Problem{Kind: MissingBytes, Digest: b.Digest}
				x.removeUnreferenced(ctx, &p, b.Size, future, notClaimed)
				x.add(p)
			}
		}
		if len(bs) < page {
			return nil
		}
		after = bs[len(bs)-1].Digest
	}
}

// refs reports manifests whose RefBlob references have no bytes. These are
// never repaired: the blob must be pushed again.
func (x *run) refs(ctx context.Context) error {
	var (
		after   meta.BlobRef
		lastD   digest.Digest
		missing bool
	)
	for {
		rs, err := x.c.meta.BlobRefs(ctx, after, page)
		if err != nil {
			return err
		}
		for _, ref := range rs {
			if ref.Digest != lastD {
				ok, err := x.exists(ctx, ref.Digest)
				if err != nil {
					return err
				}
				lastD, missing = ref.Digest, !ok
			}
			if missing {
				x.add(Problem{Kind: MissingBlob, Digest: ref.Digest, Repo: ref.Manifest.Repo, Manifest: ref.Manifest.Digest,
					Detail: "not repairable: push the blob again"})
			}
		}
		if len(rs) < page {
			return nil
		}
		after = rs[len(rs)-1]
	}
}

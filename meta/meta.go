// Package meta owns the registry's metadata: repositories, manifests (their
// exact bytes and the facts parsed from them), tags, repository-scoped blob
// links, references between manifests and blobs, referrers and upload
// sessions. It does not hold blob bytes (package blob does) and knows nothing
// of HTTP.
//
// Backends live in sub-packages (meta/sqlite, later meta/postgres) and all
// pass the shared suite in meta/metatest.
package meta

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
)

// Errors returned by every backend, wrapped with context.
var (
	ErrRepoNotFound     = errors.New("repository not found")
	ErrManifestNotFound = errors.New("manifest not found")
	ErrTagNotFound      = errors.New("tag not found")
	// ErrTagExists: PutManifest with Manifest.KeepTags would have moved a
	// tag that points at another digest; nothing changed.
	ErrTagExists      = errors.New("tag exists and points at another manifest")
	ErrBlobNotFound   = errors.New("blob not linked")
	ErrUploadNotFound = errors.New("upload not found")
	// ErrUploadConflict: the upload's recorded offset is not the one the
	// caller expected (a concurrent or out-of-order write).
	ErrUploadConflict = errors.New("upload offset conflict")
	// ErrTooManyUploads: CreateUploadCapped found a cap reached.
	ErrTooManyUploads = errors.New("too many open uploads")
)

// TooManyUploadsError is returned by CreateUploadCapped when a cap is
// reached. It matches ErrTooManyUploads.
type TooManyUploadsError struct {
	// Of is what the cap applies to: "repository" or "client".
	Of    string
	Limit int
}

func (e *TooManyUploadsError) Error() string {
	return fmt.Sprintf("too many open uploads: the %s already has %d", e.Of, e.Limit)
}
func (e *TooManyUploadsError) Is(target error) bool { return target == ErrTooManyUploads }

// UploadCaps bound the open upload sessions CreateUploadCapped allows; 0 (or
// less) means no cap.
type UploadCaps struct {
	PerRepository int // sessions whose Repo is the new one's
	PerClient     int // sessions whose Client is the new one's (not counted when Client is "")
}

// ManifestBody is what a manifest GET serves: the bytes as pushed, the
// media type they were pushed with, and their digest.
type ManifestBody struct {
	Digest    digest.Digest
	MediaType string
	Content   []byte
}

// ManifestSize is what ManifestSizes reports of a stored manifest.
type ManifestSize struct {
	Content int64 // length of the manifest's bytes: a descriptor's size
	Total   int64 // Manifest.TotalSize
}

// BlobUnknownError is returned by PutManifest when the manifest references a
// blob that is not linked in the repository. It matches ErrBlobNotFound.
type BlobUnknownError struct{ Digest digest.Digest }

func (e *BlobUnknownError) Error() string {
	return fmt.Sprintf("manifest references blob %s not linked in the repository", e.Digest)
}
func (e *BlobUnknownError) Is(target error) bool { return target == ErrBlobNotFound }

// RefKind says what a manifest reference points at.
type RefKind int

const (
	// RefBlob: a config or layer that must be linked in the repository.
	RefBlob RefKind = 1
	// RefManifest: a child manifest of an index; it need not exist (sparse
	// indexes are allowed).
	RefManifest RefKind = 2
	// RefExternal: a non-distributable layer or one with urls; recorded,
	// never required.
	RefExternal RefKind = 3
)

// Ref is one descriptor a manifest points at (subject excluded).
type Ref struct {
	Digest    digest.Digest
	Kind      RefKind
	MediaType string
	Size      int64
	// Platform of an index child ("linux/amd64/v8" style; empty if none).
	Platform string
}

// Manifest is a manifest as stored: the exact bytes pushed and the facts
// parsed from them (and from its config blob) at push time.
type Manifest struct {
	Repo      string
	Digest    digest.Digest
	MediaType string
	Content   []byte
	// ArtifactType as the referrers API reports it: the manifest's
	// artifactType, else its config media type (images), else empty.
	ArtifactType string
	// Subject digest, empty if none.
	Subject     digest.Digest
	Config      digest.Digest // empty for indexes
	Annotations map[string]string
	// Labels, OS, Architecture, Variant and Created come from the config blob.
	Labels       map[string]string
	OS           string
	Architecture string
	Variant      string
	Created      time.Time // config's created; zero if none
	// TotalSize: manifest + config + layers (images) or manifest + children
	// known at push time (indexes).
	TotalSize int64
	Refs      []Ref
	Pushed    time.Time // set by the store when first stored
	// Icons are the manifest's decoded AppStream icons, recorded by
	// PutManifest in the transaction that stores a new manifest (so a
	// push is one write); the index and catalogue serve them by digest.
	Icons []Icon
	// KeepTags: PutManifest must not move a tag that already points at
	// another digest (the pusher may create tags, not overwrite them); it
	// fails with ErrTagExists instead, in the same transaction that would
	// have moved it, so a tag created concurrently is never overwritten.
	KeepTags bool
}

// Icon is a decoded icon a manifest shows at Size pixels: PNG bytes under
// their sha256 Digest.
type Icon struct {
	Size   int
	Digest digest.Digest
	PNG    []byte
}

// Descriptor is a manifest summary as the referrers API lists it.
type Descriptor struct {
	MediaType    string
	Digest       digest.Digest
	Size         int64
	ArtifactType string
	Annotations  map[string]string
}

// Upload is a blob upload session.
type Upload struct {
	ID     string
	Repo   string
	Offset int64
	State  []byte // opaque, persisted for the blob store (blob.UploadState as JSON)
	// Client names who opened the session (for the per-client cap); may be
	// empty.
	Client  string
	Created time.Time
	Updated time.Time
}

// BlobLinker records which repository may read which blob.
type BlobLinker interface {
	// LinkBlob links a committed blob into repo (creating the repository).
	// Linking twice is not an error.
	LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error
	// BlobLink returns the size of a blob linked in repo, or ErrBlobNotFound.
	BlobLink(ctx context.Context, repo string, d digest.Digest) (int64, error)
	// RefreshLink restarts the link's age (its creation time becomes now)
	// if it was made before olderThan, so gc's grace period runs from this
	// use; a fresher link is left alone (no write). ErrBlobNotFound if
	// there is no link.
	RefreshLink(ctx context.Context, repo string, d digest.Digest, olderThan time.Time) error
	// UnlinkBlob removes the link; ErrBlobNotFound if there was none.
	UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error
	// BlobKnown reports the size of a blob linked in any repository, or
	// ErrBlobNotFound.
	BlobKnown(ctx context.Context, d digest.Digest) (int64, error)
	// LinkingRepositories returns at most n names (n < 0: no limit) of
	// repositories that link d, in byte order, strictly after after (if
	// not empty); never nil. Callers page through it to find a repository
	// they may read (a mount without from).
	LinkingRepositories(ctx context.Context, d digest.Digest, after string, n int) ([]string, error)
}

// ManifestStore stores manifests and tags.
type ManifestStore interface {
	// PutManifest stores m (if not already stored in m.Repo) and points each
	// tag at it, in one transaction. Every RefBlob must be linked in the
	// repository, else a *BlobUnknownError and nothing changes. Pushing an
	// identical manifest again only moves the tags.
	PutManifest(ctx context.Context, m *Manifest, tags ...string) error
	// GetManifest returns the manifest or ErrManifestNotFound.
	GetManifest(ctx context.Context, repo string, d digest.Digest) (*Manifest, error)
	// ManifestSizes returns the content length and TotalSize of each of ds
	// stored in repo; digests not stored there are absent from the map. It
	// reads no manifest content, however many digests are asked for.
	ManifestSizes(ctx context.Context, repo string, ds []digest.Digest) (map[digest.Digest]ManifestSize, error)
	// ResolveTag returns the digest a tag points at, or ErrTagNotFound.
	ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error)
	// ManifestBody returns what a GET of the manifest serves, in one read
	// (GetManifest also decodes labels and lists references), or
	// ErrManifestNotFound.
	ManifestBody(ctx context.Context, repo string, d digest.Digest) (ManifestBody, error)
	// TagBody is ManifestBody of the manifest a tag points at, or
	// ErrTagNotFound. The Content it returns may be shared with other
	// callers (SQLite keeps recent answers in memory): read only.
	TagBody(ctx context.Context, repo, tag string) (ManifestBody, error)
	// DeleteManifest removes the manifest and every tag pointing at it;
	// ErrManifestNotFound if absent.
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) error
	// DeleteTag removes only the tag; ErrTagNotFound if absent.
	DeleteTag(ctx context.Context, repo, tag string) error
}

// Lister pages through repositories and tags in lexical order.
type Lister interface {
	// Tags returns at most n tags of repo (n < 0: no limit) in byte order,
	// strictly after last (if not empty); never nil. ErrRepoNotFound if the
	// repository does not exist.
	Tags(ctx context.Context, repo, last string, n int) ([]string, error)
	// Repositories returns at most n repository names (n < 0: no limit) in
	// byte order, strictly after last; never nil.
	Repositories(ctx context.Context, last string, n int) ([]string, error)
}

// ReferrersReader answers the referrers API.
type ReferrersReader interface {
	// Referrers lists manifests in repo whose subject is d, filtered by
	// artifactType when it is not empty, ordered by digest: at most n of
	// them (n < 0: no limit) with digests strictly after after (if not
	// empty). An unknown repository or subject has none; the result is
	// never nil.
	Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string, after digest.Digest, n int) ([]Descriptor, error)
	// EachReferrer is Referrers one descriptor at a time: fn sees each in
	// order and may stop the walk by returning an error, which EachReferrer
	// returns. Only one descriptor (its annotations) is in memory at a
	// time, however large the page.
	EachReferrer(ctx context.Context, repo string, d digest.Digest, artifactType string, after digest.Digest, n int, fn func(Descriptor) error) error
}

// UploadStore keeps upload sessions.
type UploadStore interface {
	// CreateUpload records a new session (no cap).
	CreateUpload(ctx context.Context, u Upload) error
	// CreateUploadCapped records a new session unless its repository or
	// its client already has caps' number of open sessions, in which case
	// it returns a *TooManyUploadsError. The count and the insert are one
	// transaction, so concurrent creators never pass a cap together.
	CreateUploadCapped(ctx context.Context, u Upload, caps UploadCaps) error
	// GetUpload returns the session id of repo, or ErrUploadNotFound.
	GetUpload(ctx context.Context, repo, id string) (Upload, error)
	// UpdateUpload records new progress if the stored offset is still
	// prevOffset, else ErrUploadConflict.
	UpdateUpload(ctx context.Context, id string, prevOffset, offset int64, state []byte) error
	// DeleteUpload removes the session; ErrUploadNotFound if absent.
	DeleteUpload(ctx context.Context, id string) error
	// FinishUpload links the blob that session id committed into repo, as
	// LinkBlob does, and removes the session, in one transaction: a push
	// completed through a session costs one commit, not two. A session
	// already gone is not an error. On ErrBlobDeleting (a gc tombstone)
	// nothing changes, the session included.
	FinishUpload(ctx context.Context, id, repo string, d digest.Digest, size int64) error
}

// Store is everything a backend provides.
type Store interface {
	BlobLinker
	ManifestStore
	Lister
	ReferrersReader
	UploadStore
	Close() error
}

// Clock is a store's clock: the times it writes (a link's creation, a
// push, an upload's progress) are its Now, so the cutoffs compared with
// them (gc's grace, upload expiry, lease ends) must be too. With several
// replicas on one database, that makes the database's clock the only one
// that matters (docs/design-notes.md, "Whose clock").
type Clock interface {
	Now() time.Time
}

// ClockOf returns x's Now if x is a Clock, else time.Now.
func ClockOf(x any) func() time.Time {
	if c, ok := x.(Clock); ok {
		return c.Now
	}
	return time.Now
}

// ErrBlobDeleting is returned by LinkBlob while garbage collection is
// deleting the blob's bytes (the blob's row is a tombstone). The bytes the
// caller committed may be gone; it retries after a moment and then checks
// that the bytes exist (see package gc for the protocol).
var ErrBlobDeleting = errors.New("blob is being garbage-collected")

// The types below are what garbage collection and fsck read and write
// through the narrow interfaces they declare (gc.Meta, fsck.Meta). Every
// backend implements those methods and passes meta/metatest's GC contract.

// LinkKey names one blob link: blob Digest readable from Repo. It is also
// the cursor of link listings, ordered by (Repo, Digest) in byte order.
type LinkKey struct {
	Repo   string
	Digest digest.Digest
}

// ManifestKey names a manifest in a repository; the cursor of manifest
// listings, ordered by (Repo, Digest).
type ManifestKey struct {
	Repo   string
	Digest digest.Digest
}

// UntaggedManifest is a manifest that no tag and no index of its
// repository points at.
type UntaggedManifest struct {
	ManifestKey
	// Subject is the manifest's subject, empty if none; SubjectExists says
	// whether the subject is a manifest of the same repository.
	Subject       digest.Digest
	SubjectExists bool
	Pushed        time.Time
}

// ManifestSweep is the rule SweepManifests re-checks inside its transaction.
// A manifest goes only if no tag and no manifest of its repository (an
// index) points at it, and either
//   - it has no subject in the repository (no subject, or the subject is
//     not a manifest there) and was pushed before UntaggedBefore, or
//   - it has a subject that is not a manifest of the repository and was
//     pushed before OrphanBefore.
//
// A zero time disables its rule. A referrer whose subject exists is kept.
type ManifestSweep struct {
	UntaggedBefore time.Time
	OrphanBefore   time.Time
}

// BlobRecord is a blob's row.
type BlobRecord struct {
	Digest digest.Digest
	Size   int64
	// Deleting marks a tombstone: garbage collection has claimed the blob
	// and is deleting (or crashed while deleting) its bytes. No link may be
	// made to it until DropBlobs removes the row.
	Deleting bool
	// ClaimExpires is when the lease of the run holding a tombstone ends
	// (on that run's clock); after it another run may take the tombstone
	// over. Zero for a live row.
	ClaimExpires time.Time
}

// DefaultClaimLease is how long a claim on tombstones lasts unless the
// claimant says otherwise (gc.Policy.ClaimLease, fsck.Options.ClaimLease).
const DefaultClaimLease = 10 * time.Minute

// Claim identifies one garbage-collection run (or fsck repair) claiming
// tombstones. Claims are exclusive: a tombstone belongs to the run whose
// Token it carries; only that run's DropBlobs removes it, and ClaimBlobs
// returns to a run only its own tombstones. Another run takes a tombstone
// over only after its lease expired (its holder crashed, or stalled past
// the lease). So the holder must finish with a tombstone's bytes well
// within Lease of At, on its own clock: package gc stops deleting a batch
// half-way through the lease.
type Claim struct {
	// Token is random and unique to the run; it must not be empty.
	Token string
	// At is the claimant's time now: tombstones claimed get a lease until
	// At+Lease, and tombstones whose lease ended before At may be taken
	// over.
	At    time.Time
	Lease time.Duration
}

// BlobRef is a manifest's RefBlob reference to a blob.
type BlobRef struct {
	Manifest ManifestKey
	Digest   digest.Digest
}

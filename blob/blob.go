// Package blob owns the content-addressed bytes of layers and configs: the
// store interface, resumable upload writers that hash while streaming, and the
// sentinel errors every driver returns. It knows nothing of repositories,
// manifests or HTTP; which repository may read a blob is recorded in meta.
//
// Drivers live in sub-packages (blob/fs, later blob/s3) and all pass the
// shared suite in blob/blobtest.
package blob

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// Errors returned by every driver, wrapped with context. Callers test them
// with errors.Is.
var (
	// ErrNotFound: no committed blob (or no upload) with that digest or id.
	ErrNotFound = errors.New("blob not found")
	// ErrDigestMismatch: the bytes written do not hash to the expected digest.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrSizeInvalid: the bytes written are not of the expected size.
	ErrSizeInvalid = errors.New("size mismatch")
	// ErrInvalid: a digest or upload id that is not acceptable (checked
	// before it touches a path).
	ErrInvalid = errors.New("invalid blob reference")
)

// Info describes a committed blob.
type Info struct {
	Digest  digest.Digest
	Size    int64
	ModTime time.Time
}

// UploadState is what an upload session must persist to resume writing after
// a restart or on another replica: the number of bytes durably written, and
// the driver's own state over exactly those bytes (the filesystem driver's
// marshalled sha256; the S3 driver's multipart upload, parts and hash).
// Callers store it with the session and hand it back unchanged; they read
// Size and never decode Data.
type UploadState struct {
	Size int64  `json:"size"`
	Data []byte `json:"data,omitempty"`
}

// Provider reads committed blobs.
type Provider interface {
	// Stat returns the blob's size, or an error wrapping ErrNotFound.
	Stat(ctx context.Context, d digest.Digest) (Info, error)
	// Open returns the blob's bytes. The caller closes the reader. On the
	// filesystem driver the reader is an *os.File (so http.ServeContent can
	// use sendfile).
	Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, error)
}

// Ingester writes new blobs through upload sessions identified by an id.
type Ingester interface {
	// Upload opens upload id for writing, continuing from st (the zero
	// UploadState starts a new, empty upload). Bytes beyond st.Size left by
	// an earlier, unacknowledged write are discarded. Only one Writer per
	// id may be open at a time; callers serialise.
	Upload(ctx context.Context, id string, st UploadState) (Writer, error)
	// AbortUpload removes the upload's temporary data. Unknown ids are not
	// an error.
	AbortUpload(ctx context.Context, id string) error
}

// Writer appends to an upload, hashing as it writes.
//
// Commit always closes the writer, even on error; after a successful commit
// the blob is visible to Provider and the upload's data is gone. Close
// without Commit keeps the data for a later Upload with the returned state.
type Writer interface {
	io.Writer
	// State makes everything written so far durable (fsync) and returns the
	// state to persist with the session. A failed sync is reported, never
	// retried.
	State() (UploadState, error)
	// Commit syncs, checks that the bytes hash to expected (sha256 or
	// sha512) and, if size >= 0, that there are exactly size of them, then
	// makes the blob visible under expected. A blob that already exists is
	// success (the upload's data is discarded). On ErrDigestMismatch or
	// ErrSizeInvalid the upload's data is removed.
	Commit(ctx context.Context, expected digest.Digest, size int64) (Info, error)
	// Close releases the writer without committing.
	Close() error
}

// Manager lists and removes committed blobs and upload data (used by gc and
// fsck).
//
// Garbage collection relies on two properties of every driver: Stat is
// linearizable with Delete (once Delete returns, no Stat finds the blob,
// and a Stat that finds it was before the Delete), and a Commit of a blob
// that already exists refreshes its ModTime (a push of it is recent, for
// gc's grace). blobtest checks both.
type Manager interface {
	// Delete removes a committed blob; ErrNotFound if absent.
	Delete(ctx context.Context, d digest.Digest) error
	// Walk calls fn for every committed blob, in no particular order.
	Walk(ctx context.Context, fn func(Info) error) error
	// WalkUploads calls fn for the data of every upload not yet committed
	// or aborted, with the time it was last written.
	WalkUploads(ctx context.Context, fn func(id string, modTime time.Time) error) error
}

// Redirector is what a driver whose blobs clients can fetch directly
// provides (S3: a presigned GET): the registry answers a blob GET with a
// redirect to it when configured to. Optional.
type Redirector interface {
	// RedirectURL returns a URL that serves blob d for ttl.
	RedirectURL(ctx context.Context, d digest.Digest, ttl time.Duration) (string, error)
}

// Store is everything a driver provides.
type Store interface {
	Provider
	Ingester
	Manager
}

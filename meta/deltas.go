package meta

import (
	"errors"
	"time"

	"github.com/opencontainers/go-digest"
)

// The records of Flatpak delta generation (package delta): which (source,
// target) pairs of images are planned, made, rejected or failed, and which
// delta manifests are published. A backend implements the methods package
// delta declares (delta.Store) and passes meta/metatest.RunDeltas.

// ErrDeltaLost: the caller no longer holds the lease on a delta pair
// (it ended and another worker claimed the pair, or the pair was dropped).
var ErrDeltaLost = errors.New("delta pair no longer leased to this worker")

// DeltaState is where a delta pair stands.
type DeltaState string

const (
	// DeltaPending: planned, not made yet (or to be retried).
	DeltaPending DeltaState = "pending"
	// DeltaReady: made, verified and its blob linked; Blob and Size are
	// set. Only ready pairs are published.
	DeltaReady DeltaState = "ready"
	// DeltaRejected: made and correct, but not worth publishing (not
	// substantially smaller than the layer), or out of bounds (a layer
	// over the size limit, an image with no single layer to diff).
	DeltaRejected DeltaState = "rejected"
	// DeltaFailed: generation or verification failed; never published,
	// not retried until the deltas are rebuilt.
	DeltaFailed DeltaState = "failed"
)

// DeltaKey names a delta pair: from image Source to image Target, both
// manifests of Repo.
type DeltaKey struct {
	Repo   string
	Target digest.Digest
	Source digest.Digest
}

// DeltaPair is one planned delta.
type DeltaPair struct {
	DeltaKey
	State DeltaState
	// Blob and Size: the delta blob (ready pairs).
	Blob digest.Digest
	Size int64
	// From and To are the DiffIDs the delta turns into one another (set
	// once made).
	From, To digest.Digest
	// LayerSize is the size of the target's layer blob, which an update
	// without the delta downloads.
	LayerSize int64
	// Detail says why a pair was rejected or failed.
	Detail   string
	Attempts int
	Created  time.Time
	Updated  time.Time
	// SourcePushed is when the source image was pushed (zero if it is
	// gone): the newest source is the previous version.
	SourcePushed time.Time
}

// DeltaResult is what a generation run records of a pair.
type DeltaResult struct {
	State     DeltaState
	Blob      digest.Digest
	Size      int64
	From, To  digest.Digest
	LayerSize int64
	Detail    string
}

// DeltaTarget is a tagged Flatpak image that has no delta plan yet.
type DeltaTarget struct {
	ManifestKey
	// Ref is the value of the label the targets were selected by.
	Ref    string
	Pushed time.Time
}

// DeltaManifest is a delta manifest Berth published for Target in Repo.
// A live one is listed in the repository's _deltaindex; a retired one (no
// longer listed) is deleted once it has been retired long enough that no
// client still follows an old _deltaindex to it.
type DeltaManifest struct {
	Repo    string
	Target  digest.Digest
	Digest  digest.Digest
	Retired time.Time // zero while live
}

package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"hash"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
)

// Factory describes a driver to the suite.
type Factory struct {
	// New returns a new, empty store for one test. Required. Release
	// resources with t.Cleanup.
	New func(t *testing.T) blob.Store

	// Reopen returns another Store instance over the same storage as s, as
	// a restarted process or another replica would open it. Optional:
	// without it the resume-on-a-new-instance checks are skipped.
	Reopen func(t *testing.T, s blob.Store) blob.Store

	// Leftovers returns the names of everything in s's storage that is not
	// a committed blob: upload data, temporary files, partial objects.
	// Optional: without it the tear-down check after each test relies on
	// WalkUploads alone.
	Leftovers func(t *testing.T, s blob.Store) []string
}

// Run runs the suite against stores made by newStore, each new and empty.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	RunFactory(t, Factory{New: newStore})
}

// RunFactory runs the suite against f. After each test it checks, like
// distribution's TearDownTest, that every upload the test started was
// committed or aborted without leaving data behind.
func RunFactory(t *testing.T, f Factory) {
	if f.New == nil {
		t.Fatal("blobtest: Factory.New is nil")
	}
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"SmallBlob", testSmallBlob},
		{"EmptyBlob", testEmptyBlob},
		{"LargeStreamedBlob", testLargeStreamedBlob},
		{"SHA512", testSHA512},
		{"DigestMismatch", testDigestMismatch},
		{"SizeMismatch", testSizeMismatch},
		{"CommitExisting", testCommitExisting},
		{"CommitExistingRefreshes", testCommitExistingRefreshes},
		{"StatAfterDelete", testStatAfterDelete},
		{"CommitCanceled", testCommitCanceled},
		{"WriterAfterClose", testWriterAfterClose},
		{"Resume", testResume},
		{"ResumeNewInstance", testResumeNewInstance},
		{"ResumeDiscardsUnsaved", testResumeDiscardsUnsaved},
		{"ResumeZeroStateRestarts", testResumeZeroStateRestarts},
		{"ResumeBadState", testResumeBadState},
		{"ResumeGone", testResumeGone},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"OpenSeek", testOpenSeek},
		{"Walk", testWalk},
		{"WalkUploads", testWalkUploads},
		{"InvalidDigest", testInvalidDigest},
		{"InvalidUploadID", testInvalidUploadID},
		{"AbortUpload", testAbortUpload},
		{"ConcurrentCommitSameDigest", testConcurrentCommitSameDigest},
		{"ConcurrentReaders", testConcurrentReaders},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, f) })
	}
}

// store returns a new store whose storage is checked for leftovers when the
// test ends.
func (f Factory) store(t *testing.T) blob.Store {
	t.Helper()
	s := f.New(t)
	t.Cleanup(func() { f.tearDown(t, s) })
	return s
}

func (f Factory) tearDown(t *testing.T, s blob.Store) {
	// t.Context is already canceled when cleanups run.
	ctx := context.Background()
	var ids []string
	err := s.WalkUploads(ctx, func(id string, _ time.Time) error {
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		t.Errorf("tear down: WalkUploads: %v", err)
	}
	if len(ids) > 0 {
		t.Errorf("tear down: uploads remain: %q", ids)
	}
	if f.Leftovers != nil {
		if names := f.Leftovers(t, s); len(names) > 0 {
			t.Errorf("tear down: temporary data remains: %q", names)
		}
	}
}

// sum returns the digest of data under alg.
func sum(alg digest.Algorithm, data []byte) digest.Digest {
	h := newHash(alg)
	h.Write(data)
	return digest.NewDigest(alg, h)
}

func newHash(alg digest.Algorithm) hash.Hash {
	if alg == blob.SHA512 {
		return sha512.New()
	}
	return sha256.New()
}

// pattern returns n deterministic pseudo-random bytes, generated as read.
func pattern(seed uint64, n int64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return io.LimitReader(rand.NewChaCha8(s), n)
}

// patternBytes returns pattern(seed, n) in memory, for small blobs.
func patternBytes(seed uint64, n int) []byte {
	b, _ := io.ReadAll(pattern(seed, int64(n)))
	return b
}

// upload starts upload id from st.
func upload(t *testing.T, s blob.Store, id string, st blob.UploadState) blob.Writer {
	t.Helper()
	w, err := s.Upload(t.Context(), id, st)
	if err != nil {
		t.Fatalf("Upload(%q, size %d): %v", id, st.Size, err)
	}
	return w
}

func write(t *testing.T, w blob.Writer, p []byte) {
	t.Helper()
	n, err := w.Write(p)
	if err != nil || n != len(p) {
		t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
	}
}

func state(t *testing.T, w blob.Writer) blob.UploadState {
	t.Helper()
	st, err := w.State()
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	return st
}

func closeWriter(t *testing.T, w blob.Writer) {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func commit(t *testing.T, w blob.Writer, d digest.Digest, size int64) blob.Info {
	t.Helper()
	info, err := w.Commit(t.Context(), d, size)
	if err != nil {
		t.Fatalf("Commit(%s, %d): %v", d, size, err)
	}
	if info.Digest != d || (size >= 0 && info.Size != size) {
		t.Fatalf("Commit(%s, %d) = %+v", d, size, info)
	}
	return info
}

// put stores data as a blob under alg through upload id.
func put(t *testing.T, s blob.Store, id string, alg digest.Algorithm, data []byte) digest.Digest {
	t.Helper()
	w := upload(t, s, id, blob.UploadState{})
	write(t, w, data)
	d := sum(alg, data)
	commit(t, w, d, int64(len(data)))
	return d
}

func abort(t *testing.T, s blob.Store, id string) {
	t.Helper()
	if err := s.AbortUpload(t.Context(), id); err != nil {
		t.Fatalf("AbortUpload(%q): %v", id, err)
	}
}

// checkBlob checks that d is committed and holds want.
func checkBlob(t *testing.T, s blob.Store, d digest.Digest, want []byte) {
	t.Helper()
	info, err := s.Stat(t.Context(), d)
	if err != nil {
		t.Fatalf("Stat(%s): %v", d, err)
	}
	if info.Digest != d || info.Size != int64(len(want)) {
		t.Errorf("Stat(%s) = %+v, want size %d", d, info, len(want))
	}
	rc, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatalf("Open(%s): %v", d, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", d, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("content of %s: got %d bytes, want %d (first difference at %d)", d, len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// checkAbsent checks that d is not committed.
func checkAbsent(t *testing.T, s blob.Store, d digest.Digest) {
	t.Helper()
	if _, err := s.Stat(t.Context(), d); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat(%s) = %v, want ErrNotFound", d, err)
	}
	if rc, err := s.Open(t.Context(), d); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Open(%s) = %v, want ErrNotFound", d, err)
		if err == nil {
			rc.Close()
		}
	}
}

// blobs returns every committed blob, by Walk.
func blobs(t *testing.T, s blob.Store) map[digest.Digest]int64 {
	t.Helper()
	m := map[digest.Digest]int64{}
	err := s.Walk(t.Context(), func(info blob.Info) error {
		if _, dup := m[info.Digest]; dup {
			t.Errorf("Walk reported %s twice", info.Digest)
		}
		m[info.Digest] = info.Size
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return m
}

// uploads returns the ids of every pending upload, by WalkUploads, sorted.
func uploads(t *testing.T, s blob.Store) []string {
	t.Helper()
	var ids []string
	err := s.WalkUploads(t.Context(), func(id string, _ time.Time) error {
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		t.Fatalf("WalkUploads: %v", err)
	}
	slices.Sort(ids)
	return ids
}

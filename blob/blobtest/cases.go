package blobtest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
)

func testSmallBlob(t *testing.T, f Factory) {
	s := f.store(t)
	data := []byte("hello, berth")
	w := upload(t, s, "small", blob.UploadState{})
	write(t, w, data[:5])
	write(t, w, data[5:])
	d := sum(blob.SHA256, data)
	info := commit(t, w, d, int64(len(data)))
	if info.ModTime.IsZero() {
		t.Errorf("Commit returned a zero ModTime")
	}
	checkBlob(t, s, d, data)
	if got := blobs(t, s); len(got) != 1 || got[d] != int64(len(data)) {
		t.Errorf("Walk = %v, want only %s", got, d)
	}
	if ids := uploads(t, s); len(ids) != 0 {
		t.Errorf("WalkUploads after commit = %q, want none", ids)
	}
}

func testEmptyBlob(t *testing.T, f Factory) {
	s := f.store(t)
	for _, alg := range []digest.Algorithm{blob.SHA256, blob.SHA512} {
		w := upload(t, s, "empty-"+string(alg), blob.UploadState{})
		d := sum(alg, nil)
		commit(t, w, d, 0)
		checkBlob(t, s, d, []byte{})
	}
	// A written empty slice is no data either.
	w := upload(t, s, "empty-write", blob.UploadState{})
	write(t, w, nil)
	commit(t, w, sum(blob.SHA256, nil), 0)
}

// testLargeStreamedBlob streams a blob larger than any buffer, with a pause
// (State, Close, Upload) at an offset that is not a hash block boundary.
func testLargeStreamedBlob(t *testing.T, f Factory) {
	size := int64(64 << 20)
	if testing.Short() {
		size = 8 << 20
	}
	const seed = 64
	s := f.store(t)

	h := sha256.New()
	if _, err := io.Copy(h, pattern(seed, size)); err != nil {
		t.Fatal(err)
	}
	d := digest.NewDigest(blob.SHA256, h)

	src := pattern(seed, size)
	half := size/2 + 7
	buf := make([]byte, 1<<20+13) // odd chunks, like a network body
	w := upload(t, s, "large", blob.UploadState{})
	if n, err := io.CopyBuffer(struct{ io.Writer }{w}, io.LimitReader(src, half), buf); err != nil || n != half {
		t.Fatalf("first half: wrote %d, %v", n, err)
	}
	st := state(t, w)
	if st.Size != half {
		t.Fatalf("State().Size = %d, want %d", st.Size, half)
	}
	closeWriter(t, w)
	w = upload(t, s, "large", st)
	if n, err := io.CopyBuffer(struct{ io.Writer }{w}, src, buf); err != nil || n != size-half {
		t.Fatalf("second half: wrote %d, %v", n, err)
	}
	commit(t, w, d, size)

	info, err := s.Stat(t.Context(), d)
	if err != nil || info.Size != size {
		t.Fatalf("Stat = %+v, %v; want size %d", info, err, size)
	}
	rc, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h.Reset()
	if n, err := io.CopyBuffer(h, rc, buf); err != nil || n != size {
		t.Fatalf("read back %d bytes, %v; want %d", n, err, size)
	}
	if got := digest.NewDigest(blob.SHA256, h); got != d {
		t.Errorf("read back content hashes to %s, want %s", got, d)
	}
}

func testSHA512(t *testing.T, f Factory) {
	s := f.store(t)
	data := patternBytes(512, 100_000)
	w := upload(t, s, "sha512", blob.UploadState{})
	write(t, w, data[:33_333])
	st := state(t, w)
	closeWriter(t, w)
	w = upload(t, s, "sha512", st)
	write(t, w, data[33_333:])
	d := sum(blob.SHA512, data)
	commit(t, w, d, int64(len(data)))
	checkBlob(t, s, d, data)
	checkAbsent(t, s, sum(blob.SHA256, data))
	if got := blobs(t, s); len(got) != 1 || got[d] != int64(len(data)) {
		t.Errorf("Walk = %v, want only %s", got, d)
	}
}

func testDigestMismatch(t *testing.T, f Factory) {
	s := f.store(t)
	data := []byte("the bytes written")
	for _, alg := range []digest.Algorithm{blob.SHA256, blob.SHA512} {
		t.Run(string(alg), func(t *testing.T) {
			id := "mismatch-" + string(alg)
			w := upload(t, s, id, blob.UploadState{})
			write(t, w, data)
			st := state(t, w)
			wrong := sum(alg, []byte("other bytes"))
			_, err := w.Commit(t.Context(), wrong, int64(len(data)))
			if !errors.Is(err, blob.ErrDigestMismatch) {
				t.Fatalf("Commit(wrong digest) = %v, want ErrDigestMismatch", err)
			}
			checkAbsent(t, s, wrong)
			checkAbsent(t, s, sum(alg, data))
			if ids := uploads(t, s); slices.Contains(ids, id) {
				t.Errorf("upload data kept after digest mismatch: %q", ids)
			}
			if _, err := s.Upload(t.Context(), id, st); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("Upload after digest mismatch = %v, want ErrNotFound", err)
			}
			if _, err := w.Write([]byte("x")); err == nil {
				t.Errorf("Write after failed Commit succeeded; Commit must close")
			}
		})
	}
	if got := blobs(t, s); len(got) != 0 {
		t.Errorf("Walk = %v, want nothing", got)
	}
}

func testSizeMismatch(t *testing.T, f Factory) {
	s := f.store(t)
	data := []byte("twelve bytes")
	d := sum(blob.SHA256, data)
	for _, size := range []int64{0, 11, 13, 1 << 40} {
		w := upload(t, s, "size", blob.UploadState{})
		write(t, w, data)
		if _, err := w.Commit(t.Context(), d, size); !errors.Is(err, blob.ErrSizeInvalid) {
			t.Fatalf("Commit(size %d) of %d bytes = %v, want ErrSizeInvalid", size, len(data), err)
		}
		checkAbsent(t, s, d)
		if ids := uploads(t, s); len(ids) != 0 {
			t.Errorf("upload data kept after size mismatch: %q", ids)
		}
	}
	// A negative size is not checked.
	w := upload(t, s, "size", blob.UploadState{})
	write(t, w, data)
	info := commit(t, w, d, -1)
	if info.Size != int64(len(data)) {
		t.Errorf("Commit(size -1).Size = %d, want %d", info.Size, len(data))
	}
	checkBlob(t, s, d, data)
}

func testCommitExisting(t *testing.T, f Factory) {
	s := f.store(t)
	data := patternBytes(3, 4096)
	for _, alg := range []digest.Algorithm{blob.SHA256, blob.SHA512} {
		d := put(t, s, "first-"+string(alg), alg, data)
		w := upload(t, s, "second-"+string(alg), blob.UploadState{})
		write(t, w, data)
		st := state(t, w)
		info := commit(t, w, d, int64(len(data)))
		if info.Size != int64(len(data)) {
			t.Errorf("Commit of existing %s: size %d, want %d", alg, info.Size, len(data))
		}
		checkBlob(t, s, d, data)
		if _, err := s.Upload(t.Context(), "second-"+string(alg), st); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Upload after commit of existing blob = %v, want ErrNotFound (data gone)", err)
		}
	}
	if got := blobs(t, s); len(got) != 2 {
		t.Errorf("Walk = %v, want 2 blobs", got)
	}
}

func testCommitCanceled(t *testing.T, f Factory) {
	s := f.store(t)
	data := []byte("canceled")
	d := sum(blob.SHA256, data)
	w := upload(t, s, "canceled", blob.UploadState{})
	write(t, w, data)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := w.Commit(ctx, d, int64(len(data))); !errors.Is(err, context.Canceled) {
		t.Errorf("Commit with canceled context = %v, want context.Canceled", err)
	}
	checkAbsent(t, s, d)
	abort(t, s, "canceled")
}

func testWriterAfterClose(t *testing.T, f Factory) {
	s := f.store(t)
	data := []byte("closed")
	d := sum(blob.SHA256, data)

	w := upload(t, s, "closed", blob.UploadState{})
	write(t, w, data)
	closeWriter(t, w)
	if _, err := w.Write(data); err == nil {
		t.Errorf("Write after Close succeeded")
	}
	if _, err := w.State(); err == nil {
		t.Errorf("State after Close succeeded")
	}
	if _, err := w.Commit(t.Context(), d, int64(len(data))); err == nil {
		t.Errorf("Commit after Close succeeded")
	}
	checkAbsent(t, s, d)
	_ = w.Close() // must not panic
	abort(t, s, "closed")

	w = upload(t, s, "committed", blob.UploadState{})
	write(t, w, data)
	commit(t, w, d, int64(len(data)))
	if _, err := w.Write(data); err == nil {
		t.Errorf("Write after Commit succeeded")
	}
	if _, err := w.Commit(t.Context(), d, int64(len(data))); err == nil {
		t.Errorf("second Commit succeeded")
	}
	_ = w.Close() // must not panic
	checkBlob(t, s, d, data)
}

// testResume writes one blob through several writers, each resuming from
// the previous one's state, at offsets that are not hash block boundaries.
func testResume(t *testing.T, f Factory) {
	s := f.store(t)
	data := patternBytes(7, 300_000)
	cuts := []int{0, 1, 63, 64, 65, 4096, 100_001, 300_000}
	var st blob.UploadState
	for i := 1; i < len(cuts); i++ {
		w := upload(t, s, "resume", st)
		write(t, w, data[cuts[i-1]:cuts[i]])
		st = state(t, w)
		if st.Size != int64(cuts[i]) {
			t.Fatalf("State().Size = %d, want %d", st.Size, cuts[i])
		}
		closeWriter(t, w)
	}
	if ids := uploads(t, s); !slices.Equal(ids, []string{"resume"}) {
		t.Errorf("WalkUploads = %q, want [resume]", ids)
	}
	w := upload(t, s, "resume", st)
	d := sum(blob.SHA256, data)
	commit(t, w, d, int64(len(data)))
	checkBlob(t, s, d, data)

	// State before any write is a valid starting point too.
	w = upload(t, s, "resume-zero", blob.UploadState{})
	st = state(t, w)
	closeWriter(t, w)
	w = upload(t, s, "resume-zero", st)
	write(t, w, []byte("x"))
	commit(t, w, sum(blob.SHA256, []byte("x")), 1)
}

// testResumeNewInstance continues an upload on another instance of the
// store over the same storage, as after a restart or on another replica.
func testResumeNewInstance(t *testing.T, f Factory) {
	if f.Reopen == nil {
		t.Skip("Factory.Reopen not set")
	}
	s := f.store(t)
	a, b, c := patternBytes(1, 70_001), patternBytes(2, 5_000), patternBytes(3, 9_999)

	w := upload(t, s, "restart", blob.UploadState{})
	write(t, w, a)
	st := state(t, w)
	write(t, w, b) // never acknowledged
	closeWriter(t, w)

	s2 := f.Reopen(t, s)
	if ids := uploads(t, s2); !slices.Equal(ids, []string{"restart"}) {
		t.Errorf("WalkUploads on new instance = %q, want [restart]", ids)
	}
	w = upload(t, s2, "restart", st)
	write(t, w, c)
	ac := append(slices.Clone(a), c...)
	d := sum(blob.SHA256, ac)
	commit(t, w, d, int64(len(ac)))
	checkBlob(t, s2, d, ac)
	checkBlob(t, s, d, ac)
}

// testResumeDiscardsUnsaved: bytes written after the saved state and never
// acknowledged are gone when the upload resumes from that state.
func testResumeDiscardsUnsaved(t *testing.T, f Factory) {
	s := f.store(t)
	a, b, c := []byte("AAAAAAAAAA"), []byte("BBBBBBBBBBBBBBBBBBBB"), []byte("CCCCC")
	w := upload(t, s, "discard", blob.UploadState{})
	write(t, w, a)
	st := state(t, w)
	write(t, w, b)
	closeWriter(t, w)

	w = upload(t, s, "discard", st)
	write(t, w, c)
	ac := append(slices.Clone(a), c...)
	d := sum(blob.SHA256, ac)
	commit(t, w, d, int64(len(ac)))
	checkBlob(t, s, d, ac)
}

func testResumeZeroStateRestarts(t *testing.T, f Factory) {
	s := f.store(t)
	w := upload(t, s, "restart", blob.UploadState{})
	write(t, w, []byte("old data"))
	state(t, w)
	closeWriter(t, w)

	w = upload(t, s, "restart", blob.UploadState{})
	write(t, w, []byte("new"))
	d := sum(blob.SHA256, []byte("new"))
	commit(t, w, d, 3)
	checkBlob(t, s, d, []byte("new"))
}

// testResumeBadState: a state that can't describe the upload is refused,
// and never leads to a blob whose bytes don't match its digest.
func testResumeBadState(t *testing.T, f Factory) {
	s := f.store(t)
	data := []byte("0123456789")
	w := upload(t, s, "bad", blob.UploadState{})
	write(t, w, data[:5])
	st5 := state(t, w)
	write(t, w, data[5:])
	st10 := state(t, w)
	closeWriter(t, w)

	for _, tc := range []struct {
		name string
		st   blob.UploadState
	}{
		{"negative size", blob.UploadState{Size: -1}},
		{"size without hash state", blob.UploadState{Size: 10}},
		{"corrupt hash state", blob.UploadState{Size: 10, Data: []byte("not a hash state")}},
		{"truncated hash state", blob.UploadState{Size: 10, Data: st10.Data[:len(st10.Data)/2]}},
	} {
		if w, err := s.Upload(t.Context(), "bad", tc.st); !errors.Is(err, blob.ErrInvalid) {
			t.Errorf("Upload with %s = %v, want ErrInvalid", tc.name, err)
			if err == nil {
				w.Close()
			}
		}
	}

	// A hash state over 5 bytes claiming 10: refused now, or the commit
	// of what it would produce is a digest mismatch.
	mixed := blob.UploadState{Size: 10, Data: st5.Data}
	if w, err := s.Upload(t.Context(), "bad", mixed); err == nil {
		write(t, w, []byte("!"))
		want := append(slices.Clone(data), '!')
		if _, err := w.Commit(t.Context(), sum(blob.SHA256, want), int64(len(want))); !errors.Is(err, blob.ErrDigestMismatch) {
			t.Errorf("Commit after resuming with a mismatched state = %v, want ErrDigestMismatch", err)
		}
		checkAbsent(t, s, sum(blob.SHA256, want))
	}

	// A state claiming more bytes than the upload holds.
	w = upload(t, s, "short", blob.UploadState{})
	write(t, w, data)
	stLong := state(t, w)
	closeWriter(t, w)
	w = upload(t, s, "short", blob.UploadState{})
	closeWriter(t, w)
	if w, err := s.Upload(t.Context(), "short", stLong); err == nil {
		w.Close()
		t.Errorf("Upload with a state beyond the upload's data succeeded")
	}

	abort(t, s, "bad")
	abort(t, s, "short")
	if got := blobs(t, s); len(got) != 0 {
		t.Errorf("Walk = %v, want nothing", got)
	}
}

// testResumeGone: an upload whose data is gone (aborted, committed, never
// started) can't be resumed from a non-zero state.
func testResumeGone(t *testing.T, f Factory) {
	s := f.store(t)
	w := upload(t, s, "gone", blob.UploadState{})
	write(t, w, []byte("data"))
	st := state(t, w)
	closeWriter(t, w)
	abort(t, s, "gone")
	if _, err := s.Upload(t.Context(), "gone", st); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Upload after abort = %v, want ErrNotFound", err)
	}
	if _, err := s.Upload(t.Context(), "never-started", st); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Upload of unknown id with a state = %v, want ErrNotFound", err)
	}
}

func testNotFound(t *testing.T, f Factory) {
	s := f.store(t)
	d := sum(blob.SHA256, []byte("absent"))
	_, err := s.Stat(t.Context(), d)
	checkNotFound(t, "Stat", d, err)
	rc, err := s.Open(t.Context(), d)
	if err == nil {
		rc.Close()
	}
	checkNotFound(t, "Open", d, err)
	checkNotFound(t, "Delete", d, s.Delete(t.Context(), d))
}

// checkNotFound checks that err wraps ErrNotFound with d as context.
func checkNotFound(t *testing.T, op string, d digest.Digest, err error) {
	t.Helper()
	if !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("%s(%s) = %v, want ErrNotFound", op, d, err)
		return
	}
	if !strings.Contains(err.Error(), d.Encoded()) {
		t.Errorf("%s(%s) = %q, want the digest in the message", op, d, err)
	}
}

func testDelete(t *testing.T, f Factory) {
	s := f.store(t)
	keep := put(t, s, "keep", blob.SHA256, []byte("keep"))
	data := []byte("delete me")
	for _, alg := range []digest.Algorithm{blob.SHA256, blob.SHA512} {
		d := put(t, s, "del-"+string(alg), alg, data)
		if err := s.Delete(t.Context(), d); err != nil {
			t.Fatalf("Delete(%s): %v", d, err)
		}
		checkAbsent(t, s, d)
		checkNotFound(t, "second Delete", d, s.Delete(t.Context(), d))
		// And it can come back.
		put(t, s, "again-"+string(alg), alg, data)
		checkBlob(t, s, d, data)
		if err := s.Delete(t.Context(), d); err != nil {
			t.Fatalf("Delete(%s): %v", d, err)
		}
	}
	if got := blobs(t, s); len(got) != 1 || got[keep] != 4 {
		t.Errorf("Walk = %v, want only %s", got, keep)
	}
}

func testOpenSeek(t *testing.T, f Factory) {
	s := f.store(t)
	data := patternBytes(9, 100_000)
	d := put(t, s, "seek", blob.SHA256, data)
	rc, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()

	readAt := func(whence int, off int64, n int, wantPos int64) {
		t.Helper()
		pos, err := rc.Seek(off, whence)
		if err != nil || pos != wantPos {
			t.Fatalf("Seek(%d, %d) = %d, %v; want %d", off, whence, pos, err, wantPos)
		}
		got := make([]byte, n)
		if _, err := io.ReadFull(rc, got); err != nil {
			t.Fatalf("read %d bytes at %d: %v", n, pos, err)
		}
		if want := data[pos : pos+int64(n)]; string(got) != string(want) {
			t.Errorf("bytes %d-%d differ", pos, pos+int64(n)-1)
		}
	}
	readAt(io.SeekStart, 1000, 500, 1000)
	readAt(io.SeekCurrent, 10, 90, 1510)
	readAt(io.SeekEnd, -100, 100, int64(len(data)-100))
	readAt(io.SeekStart, 0, 10, 0)

	// http.ServeContent finds the size this way.
	if end, err := rc.Seek(0, io.SeekEnd); err != nil || end != int64(len(data)) {
		t.Errorf("Seek(0, End) = %d, %v; want %d", end, err, len(data))
	}
	if n, err := rc.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read at end = %d, %v; want 0, EOF", n, err)
	}
}

func testWalk(t *testing.T, f Factory) {
	s := f.store(t)
	if got := blobs(t, s); len(got) != 0 {
		t.Errorf("Walk of empty store = %v", got)
	}
	want := map[digest.Digest]int64{}
	for i, alg := range []digest.Algorithm{blob.SHA256, blob.SHA256, blob.SHA256, blob.SHA512, blob.SHA512} {
		data := patternBytes(uint64(100+i), i*1000)
		want[put(t, s, "walk", alg, data)] = int64(len(data))
	}
	// A pending upload is not a blob.
	w := upload(t, s, "pending", blob.UploadState{})
	write(t, w, []byte("pending"))
	state(t, w)
	closeWriter(t, w)

	start := time.Now()
	var infos []blob.Info
	err := s.Walk(t.Context(), func(info blob.Info) error {
		infos = append(infos, info)
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	got := map[digest.Digest]int64{}
	for _, info := range infos {
		got[info.Digest] = info.Size
		if info.ModTime.IsZero() || info.ModTime.After(start.Add(time.Minute)) {
			t.Errorf("Walk: %s has ModTime %v", info.Digest, info.ModTime)
		}
	}
	if len(infos) != len(want) || !mapsEqual(got, want) {
		t.Errorf("Walk = %v, want %v", got, want)
	}

	stop := errors.New("stop")
	calls := 0
	err = s.Walk(t.Context(), func(blob.Info) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Walk with failing fn: %v after %d calls; want fn's error after 1", err, calls)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Walk(ctx, func(blob.Info) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Walk with canceled context = %v, want context.Canceled", err)
	}
	abort(t, s, "pending")
}

func mapsEqual(a, b map[digest.Digest]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func testWalkUploads(t *testing.T, f Factory) {
	s := f.store(t)
	before := time.Now().Add(-time.Minute) // coarse timestamps, clock skew
	for _, id := range []string{"up-1", "up-2"} {
		w := upload(t, s, id, blob.UploadState{})
		write(t, w, []byte(id))
		state(t, w)
		closeWriter(t, w)
	}
	put(t, s, "up-3", blob.SHA256, []byte("committed"))
	after := time.Now().Add(time.Minute)

	got := map[string]time.Time{}
	err := s.WalkUploads(t.Context(), func(id string, mod time.Time) error {
		got[id] = mod
		return nil
	})
	if err != nil {
		t.Fatalf("WalkUploads: %v", err)
	}
	if len(got) != 2 {
		t.Errorf("WalkUploads = %v, want up-1 and up-2", got)
	}
	for _, id := range []string{"up-1", "up-2"} {
		if mod, ok := got[id]; !ok || mod.Before(before) || mod.After(after) {
			t.Errorf("WalkUploads: %s modified %v (reported %v), want about now", id, mod, ok)
		}
	}

	stop := errors.New("stop")
	if err := s.WalkUploads(t.Context(), func(string, time.Time) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("WalkUploads with failing fn = %v, want fn's error", err)
	}

	abort(t, s, "up-1")
	w := upload(t, s, "up-2", blob.UploadState{})
	commit(t, w, sum(blob.SHA256, nil), 0)
	if ids := uploads(t, s); len(ids) != 0 {
		t.Errorf("WalkUploads after commit and abort = %q, want none", ids)
	}
}

// invalidDigests returns digests every operation taking a digest refuses.
func invalidDigests() []digest.Digest {
	ss := []string{
		"",
		"sha256",
		"sha256:",
		"../x",
		"sha256:../../../uploads/victim",
		"sha256:" + strings.Repeat("a", 63),
		"sha256:" + strings.Repeat("a", 65),
		"sha256:" + strings.Repeat("A", 64),
		"sha256:" + strings.Repeat("g", 64),
		"sha256:" + strings.Repeat("a", 62) + "/a",
		"sha256:" + strings.Repeat("a", 62) + "\x00a",
		"SHA256:" + strings.Repeat("a", 64),
		"sha512:" + strings.Repeat("a", 64),
		"sha384:" + strings.Repeat("a", 96),
		"md5:" + strings.Repeat("a", 32),
		"sha256+b64u:" + strings.Repeat("a", 43),
		strings.Repeat("a", 64),
		" sha256:" + strings.Repeat("a", 64),
		"sha256:" + strings.Repeat("a", 64) + "\n",
	}
	ds := make([]digest.Digest, len(ss))
	for i, s := range ss {
		ds[i] = digest.Digest(s)
	}
	return ds
}

func testInvalidDigest(t *testing.T, f Factory) {
	s := f.store(t)
	// A victim the path-traversal digest aims at.
	w := upload(t, s, "victim", blob.UploadState{})
	write(t, w, []byte("victim"))
	st := state(t, w)
	closeWriter(t, w)

	for _, d := range invalidDigests() {
		if _, err := s.Stat(t.Context(), d); !errors.Is(err, blob.ErrInvalid) {
			t.Errorf("Stat(%q) = %v, want ErrInvalid", d, err)
		}
		rc, err := s.Open(t.Context(), d)
		if !errors.Is(err, blob.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want ErrInvalid", d, err)
		}
		if err == nil {
			rc.Close()
		}
		if err := s.Delete(t.Context(), d); !errors.Is(err, blob.ErrInvalid) {
			t.Errorf("Delete(%q) = %v, want ErrInvalid", d, err)
		}
		w := upload(t, s, "commit-invalid", blob.UploadState{})
		write(t, w, []byte("data"))
		if _, err := w.Commit(t.Context(), d, -1); !errors.Is(err, blob.ErrInvalid) {
			t.Errorf("Commit(%q) = %v, want ErrInvalid", d, err)
		}
		abort(t, s, "commit-invalid")
	}
	// The victim is untouched.
	w = upload(t, s, "victim", st)
	d := sum(blob.SHA256, []byte("victim"))
	commit(t, w, d, 6)
	if got := blobs(t, s); len(got) != 1 {
		t.Errorf("Walk = %v, want only %s", got, d)
	}
}

func testInvalidUploadID(t *testing.T, f Factory) {
	s := f.store(t)
	ids := []string{
		"", ".", "..", "../x", "a/b", "/abs", `a\b`, "a b", "a.b", "a\x00b", "ü",
		"a\n", strings.Repeat("a", 129),
	}
	for _, id := range ids {
		if w, err := s.Upload(t.Context(), id, blob.UploadState{}); !errors.Is(err, blob.ErrInvalid) {
			t.Errorf("Upload(%q) = %v, want ErrInvalid", id, err)
			if err == nil {
				w.Close()
			}
		}
		if err := s.AbortUpload(t.Context(), id); !errors.Is(err, blob.ErrInvalid) {
			t.Errorf("AbortUpload(%q) = %v, want ErrInvalid", id, err)
		}
	}
	if got := uploads(t, s); len(got) != 0 {
		t.Errorf("WalkUploads = %q after invalid ids, want none", got)
	}
	// The longest id, and every character allowed.
	for _, id := range []string{strings.Repeat("z", 128), "AZaz09_-", "-", "_"} {
		w := upload(t, s, id, blob.UploadState{})
		write(t, w, []byte(id))
		commit(t, w, sum(blob.SHA256, []byte(id)), int64(len(id)))
	}
}

func testAbortUpload(t *testing.T, f Factory) {
	s := f.store(t)
	if err := s.AbortUpload(t.Context(), "unknown"); err != nil {
		t.Errorf("AbortUpload(unknown) = %v, want nil", err)
	}
	w := upload(t, s, "abort", blob.UploadState{})
	write(t, w, []byte("abort me"))
	state(t, w)
	closeWriter(t, w)
	abort(t, s, "abort")
	abort(t, s, "abort") // twice is fine
	if ids := uploads(t, s); len(ids) != 0 {
		t.Errorf("WalkUploads after abort = %q", ids)
	}
	checkAbsent(t, s, sum(blob.SHA256, []byte("abort me")))
}

// testConcurrentCommitSameDigest pushes one blob through several uploads at
// once, as clients pushing the same base layer do.
func testConcurrentCommitSameDigest(t *testing.T, f Factory) {
	s := f.store(t)
	const n = 8
	data := patternBytes(8, 1<<20)
	d := sum(blob.SHA256, data)
	ws := make([]blob.Writer, n)
	for i := range ws {
		ws[i] = upload(t, s, "same-"+string(rune('a'+i)), blob.UploadState{})
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, w := range ws {
		wg.Go(func() {
			<-start
			for off := 0; off < len(data); off += 64 << 10 {
				if _, err := w.Write(data[off:min(off+64<<10, len(data))]); err != nil {
					t.Errorf("upload %d: Write: %v", i, err)
					w.Close()
					return
				}
			}
			info, err := w.Commit(context.Background(), d, int64(len(data)))
			if err != nil {
				t.Errorf("upload %d: Commit: %v", i, err)
			} else if info.Digest != d || info.Size != int64(len(data)) {
				t.Errorf("upload %d: Commit = %+v", i, info)
			}
		})
	}
	close(start)
	wg.Wait()
	checkBlob(t, s, d, data)
	if got := blobs(t, s); len(got) != 1 {
		t.Errorf("Walk = %v, want one blob", got)
	}
}

func testConcurrentReaders(t *testing.T, f Factory) {
	s := f.store(t)
	data := patternBytes(32, 1<<20)
	d := put(t, s, "readers", blob.SHA256, data)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			ctx := context.Background()
			if _, err := s.Stat(ctx, d); err != nil {
				t.Errorf("reader %d: Stat: %v", i, err)
				return
			}
			rc, err := s.Open(ctx, d)
			if err != nil {
				t.Errorf("reader %d: Open: %v", i, err)
				return
			}
			defer rc.Close()
			off := int64(i * 30_000)
			if _, err := rc.Seek(off, io.SeekStart); err != nil {
				t.Errorf("reader %d: Seek: %v", i, err)
				return
			}
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Errorf("reader %d: read: %v", i, err)
				return
			}
			if string(got) != string(data[off:]) {
				t.Errorf("reader %d: content from %d differs", i, off)
			}
		})
	}
	wg.Wait()
}

// testCommitExistingRefreshes: committing a blob that exists moves its
// ModTime forward (gc's grace runs from the latest push). Stores keep
// times to the second at worst, so the second commit waits past one.
func testCommitExistingRefreshes(t *testing.T, f Factory) {
	s := f.store(t)
	data := []byte("pushed twice")
	d := put(t, s, "first", blob.SHA256, data)
	before, err := s.Stat(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	put(t, s, "second", blob.SHA256, data)
	after, err := s.Stat(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime.After(before.ModTime) {
		t.Errorf("ModTime after a second commit = %v, not after the first's %v", after.ModTime, before.ModTime)
	}
}

// testStatAfterDelete: once Delete returns, Stat and Open say the blob is
// gone, at once and from another instance over the same storage.
func testStatAfterDelete(t *testing.T, f Factory) {
	s := f.store(t)
	others := []blob.Store{s}
	if f.Reopen != nil {
		others = append(others, f.Reopen(t, s))
	}
	for i := range 20 {
		data := fmt.Appendf(nil, "blob %d", i)
		d := put(t, s, fmt.Sprint("stat-delete-", i), blob.SHA256, data)
		if err := s.Delete(t.Context(), d); err != nil {
			t.Fatal(err)
		}
		for _, o := range others {
			if _, err := o.Stat(t.Context(), d); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("Stat right after Delete = %v, want ErrNotFound", err)
			}
		}
	}
}

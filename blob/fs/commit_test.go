package fs

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
)

// recFS records the calls made through the seam, as pebble's
// vfs.WithLogging does, and fails the ones inject chooses, as errorfs does.
type recFS struct {
	root string

	mu  sync.Mutex
	ops []string
	// inject returns the error op should fail with, or nil. op is the
	// recorded string, such as "sync uploads/u". A failed write first
	// writes half its bytes, as a write hitting a full disk can.
	inject func(op string) error
}

func (r *recFS) record(op string, paths ...string) error {
	for _, p := range paths {
		rel, err := filepath.Rel(r.root, p)
		if err != nil {
			panic(err)
		}
		op += " " + filepath.ToSlash(rel)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
	if r.inject != nil {
		return r.inject(op)
	}
	return nil
}

// take returns the calls recorded since the last take.
func (r *recFS) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := r.ops
	r.ops = nil
	return ops
}

// count returns how many times op was recorded since the last take.
func (r *recFS) count(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, o := range r.ops {
		if o == op {
			n++
		}
	}
	return n
}

func (r *recFS) OpenFile(name string, flag int, perm iofs.FileMode) (file, error) {
	op := "open"
	switch {
	case flag&os.O_CREATE != 0:
		op = "create"
	case flag&(os.O_WRONLY|os.O_RDWR) == 0:
		op = "open-read"
	}
	if err := r.record(op, name); err != nil {
		return nil, err
	}
	f, err := osFS{}.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &recFile{file: f, fs: r, name: name}, nil
}

func (r *recFS) Rename(oldpath, newpath string) error {
	if err := r.record("rename", oldpath, newpath); err != nil {
		return err
	}
	return osFS{}.Rename(oldpath, newpath)
}

func (r *recFS) Remove(name string) error {
	if err := r.record("remove", name); err != nil {
		return err
	}
	return osFS{}.Remove(name)
}

func (r *recFS) MkdirAll(path string, perm iofs.FileMode) error {
	if err := r.record("mkdirall", path); err != nil {
		return err
	}
	return osFS{}.MkdirAll(path, perm)
}

func (r *recFS) Chtimes(name string, atime, mtime time.Time) error {
	if err := r.record("chtimes", name); err != nil {
		return err
	}
	return osFS{}.Chtimes(name, atime, mtime)
}

func (r *recFS) ReadDir(path string) ([]iofs.DirEntry, error) {
	if err := r.record("readdir", path); err != nil {
		return nil, err
	}
	return osFS{}.ReadDir(path)
}

func (r *recFS) SyncDir(path string) error {
	if err := r.record("syncdir", path); err != nil {
		return err
	}
	return osFS{}.SyncDir(path)
}

// recFile records writes, syncs, truncations and closes; reads, seeks and
// stats are not recorded.
type recFile struct {
	file
	fs   *recFS
	name string
}

func (f *recFile) Write(p []byte) (int, error) {
	if err := f.fs.record("write", f.name); err != nil {
		n, _ := f.file.Write(p[:len(p)/2])
		return n, err
	}
	return f.file.Write(p)
}

func (f *recFile) Sync() error {
	if err := f.fs.record("sync", f.name); err != nil {
		return err
	}
	return f.file.Sync()
}

func (f *recFile) Truncate(size int64) error {
	if err := f.fs.record(fmt.Sprintf("truncate(%d)", size), f.name); err != nil {
		return err
	}
	return f.file.Truncate(size)
}

func (f *recFile) Close() error {
	if err := f.fs.record("close", f.name); err != nil {
		f.file.Close()
		return err
	}
	return f.file.Close()
}

// newRecStore returns a store over a recording filesystem, with the calls
// made by New already taken.
func newRecStore(t *testing.T) (*Store, *recFS) {
	t.Helper()
	root := t.TempDir()
	r := &recFS{root: root}
	s, err := newStore(root, nil, r)
	if err != nil {
		t.Fatal(err)
	}
	r.take()
	return s, r
}

func sha256Of(data []byte) digest.Digest {
	sum := sha256.Sum256(data)
	return digest.NewDigestFromBytes(blob.SHA256, sum[:])
}

func sha512Of(data []byte) digest.Digest {
	sum := sha512.Sum512(data)
	return digest.NewDigestFromBytes(blob.SHA512, sum[:])
}

// blobRel is where d lives, relative to the root.
func blobRel(d digest.Digest) string {
	return "blobs/" + string(d.Algorithm()) + "/" + d.Encoded()[:2] + "/" + d.Encoded()
}

func mustUpload(t *testing.T, s *Store, id string, st blob.UploadState) blob.Writer {
	t.Helper()
	w, err := s.Upload(t.Context(), id, st)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func mustWrite(t *testing.T, w blob.Writer, p []byte) {
	t.Helper()
	if _, err := w.Write(p); err != nil {
		t.Fatal(err)
	}
}

func mustCommit(t *testing.T, w blob.Writer, d digest.Digest, size int64) {
	t.Helper()
	if _, err := w.Commit(t.Context(), d, size); err != nil {
		t.Fatal(err)
	}
}

// checkNothingVisible checks that no blob is committed.
func checkNothingVisible(t *testing.T, s *Store, d digest.Digest) {
	t.Helper()
	if _, err := s.Stat(t.Context(), d); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat(%s) = %v, want ErrNotFound", d, err)
	}
	n := 0
	if err := s.Walk(t.Context(), func(blob.Info) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("Walk: %d blobs, %v; want none", n, err)
	}
}

// TestCommitOrder asserts the crash-safety order of a commit (containerd's):
// the data is written and synced before it is renamed into place, and the
// directory that received it is synced before Commit returns.
func TestCommitOrder(t *testing.T) {
	data := []byte("ordered bytes")
	d := sha256Of(data)
	dir := "blobs/sha256/" + d.Encoded()[:2]

	t.Run("new directory", func(t *testing.T) {
		s, r := newRecStore(t)
		w := mustUpload(t, s, "u", blob.UploadState{})
		mustWrite(t, w, data[:5])
		mustWrite(t, w, data[5:])
		mustCommit(t, w, d, int64(len(data)))
		want := []string{
			"create uploads/u",
			"write uploads/u",
			"write uploads/u",
			"sync uploads/u",
			"close uploads/u",
			"mkdirall " + dir,
			"rename uploads/u " + blobRel(d),
			"syncdir " + dir,
			"syncdir blobs/sha256", // the new directory's entry
		}
		checkOps(t, r.take(), want)
	})

	t.Run("existing directory", func(t *testing.T) {
		s, r := newRecStore(t)
		// A second blob in the same directory.
		var other []byte
		for i := 0; ; i++ {
			other = fmt.Appendf(nil, "other %d", i)
			if sha256Of(other).Encoded()[:2] == d.Encoded()[:2] {
				break
			}
		}
		w := mustUpload(t, s, "first", blob.UploadState{})
		mustWrite(t, w, other)
		mustCommit(t, w, sha256Of(other), -1)
		r.take()

		w = mustUpload(t, s, "u", blob.UploadState{})
		mustWrite(t, w, data)
		mustCommit(t, w, d, int64(len(data)))
		checkOps(t, r.take(), []string{
			"create uploads/u",
			"write uploads/u",
			"sync uploads/u",
			"close uploads/u",
			"rename uploads/u " + blobRel(d),
			"syncdir " + dir,
			// No sync of blobs/sha256: the first commit synced the
			// directory's entry there.
		})
	})

	// pushData uploads and commits data as upload id; wrote is what
	// such an upload does before its commit's own steps.
	pushData := func(t *testing.T, s *Store, id string) {
		t.Helper()
		w := mustUpload(t, s, id, blob.UploadState{})
		mustWrite(t, w, data)
		mustCommit(t, w, d, int64(len(data)))
	}
	wrote := func(commit ...string) []string {
		return append([]string{"create uploads/u", "write uploads/u", "sync uploads/u", "close uploads/u"}, commit...)
	}

	t.Run("directory made elsewhere", func(t *testing.T) {
		// Another commit (or process) made the directory and may not
		// have synced its entry yet: this commit syncs it.
		s, r := newRecStore(t)
		if err := os.MkdirAll(filepath.Join(s.Root(), dir), 0o755); err != nil {
			t.Fatal(err)
		}
		pushData(t, s, "u")
		pushData(t, s, "u")
		ops := r.take()
		checkOps(t, ops[:7], wrote(
			"rename uploads/u "+blobRel(d),
			"syncdir "+dir,
			"syncdir blobs/sha256",
		))
		// The second (a dedup) knows the entry durable.
		checkOps(t, ops[7:], wrote(
			"chtimes "+blobRel(d),
			"syncdir "+dir,
			"remove uploads/u",
		))
	})

	t.Run("dedup into a directory made elsewhere", func(t *testing.T) {
		// The blob is in place, in a directory made after the store
		// opened by someone whose sync of its entry may not have
		// happened: acknowledging it again makes that entry durable.
		s, r := newRecStore(t)
		if err := os.MkdirAll(filepath.Join(s.Root(), dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.Root(), blobRel(d)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		pushData(t, s, "u")
		checkOps(t, r.take(), wrote(
			"chtimes "+blobRel(d),
			"syncdir "+dir,
			"syncdir blobs/sha256",
			"remove uploads/u",
		))
	})

	t.Run("directory removed by hand", func(t *testing.T) {
		// A known directory removed behind the store's back is made
		// again by the next commit, whose entry is then synced.
		s, r := newRecStore(t)
		pushData(t, s, "first")
		if err := os.RemoveAll(filepath.Join(s.Root(), dir)); err != nil {
			t.Fatal(err)
		}
		r.take()
		pushData(t, s, "u")
		checkOps(t, r.take(), wrote(
			"mkdirall "+dir,
			"rename uploads/u "+blobRel(d),
			"syncdir "+dir,
			"syncdir blobs/sha256",
		))
	})

	t.Run("directory there at open", func(t *testing.T) {
		// The directories present when the store opens are made durable
		// by the open's sync of blobs/<alg>, listed before it.
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		r := &recFS{root: root}
		s, err := newStore(root, nil, r)
		if err != nil {
			t.Fatal(err)
		}
		// Each blobs/<alg> is listed before it is synced: a directory
		// made by another process between a sync and a later listing
		// would be taken as durable without being so.
		ops := r.take()
		for _, alg := range []string{"sha256", "sha512"} {
			list, sync := slices.Index(ops, "readdir blobs/"+alg), slices.Index(ops, "syncdir blobs/"+alg)
			if list < 0 || sync < 0 || list > sync {
				t.Errorf("open: blobs/%s listed at %d and synced at %d, want both, the listing first: %q", alg, list, sync, ops)
			}
		}
		pushData(t, s, "u")
		checkOps(t, r.take(), wrote(
			"rename uploads/u "+blobRel(d),
			"syncdir "+dir,
		))
	})

	t.Run("sha512", func(t *testing.T) {
		s, r := newRecStore(t)
		d := sha512Of(data)
		dir := "blobs/sha512/" + d.Encoded()[:2]
		w := mustUpload(t, s, "u", blob.UploadState{})
		mustWrite(t, w, data)
		mustCommit(t, w, d, int64(len(data)))
		checkOps(t, r.take(), []string{
			"create uploads/u",
			"write uploads/u",
			"sync uploads/u",
			"close uploads/u",
			"open-read uploads/u", // hashed again: the running hash is sha256
			"close uploads/u",
			"mkdirall " + dir,
			"rename uploads/u " + blobRel(d),
			"syncdir " + dir,
			"syncdir blobs/sha512",
		})
	})

	t.Run("resume", func(t *testing.T) {
		s, r := newRecStore(t)
		w := mustUpload(t, s, "u", blob.UploadState{})
		mustWrite(t, w, data[:5])
		st, err := w.State()
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, w, []byte("unacknowledged"))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		w = mustUpload(t, s, "u", st)
		mustWrite(t, w, data[5:])
		mustCommit(t, w, d, int64(len(data)))
		checkOps(t, r.take(), []string{
			"create uploads/u",
			"write uploads/u",
			"sync uploads/u",  // State
			"syncdir uploads", // the new file's name, once
			"write uploads/u",
			"close uploads/u",
			"open uploads/u", // no O_CREATE: resuming needs the data
			"truncate(5) uploads/u",
			"write uploads/u",
			"sync uploads/u",
			"close uploads/u",
			"mkdirall " + dir,
			"rename uploads/u " + blobRel(d),
			"syncdir " + dir,
			"syncdir blobs/sha256",
		})
	})

	t.Run("already exists", func(t *testing.T) {
		s, r := newRecStore(t)
		for _, id := range []string{"first", "u"} {
			w := mustUpload(t, s, id, blob.UploadState{})
			mustWrite(t, w, data)
			mustCommit(t, w, d, int64(len(data)))
		}
		ops := r.take()
		checkOps(t, ops[len(ops)-7:], []string{
			"create uploads/u",
			"write uploads/u",
			"sync uploads/u",
			"close uploads/u",
			"chtimes blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded(),
			"syncdir " + dir, // the existing entry may not be durable yet
			"remove uploads/u",
		})
	})

	t.Run("digest mismatch", func(t *testing.T) {
		s, r := newRecStore(t)
		w := mustUpload(t, s, "u", blob.UploadState{})
		mustWrite(t, w, data)
		if _, err := w.Commit(t.Context(), sha256Of([]byte("other")), -1); !errors.Is(err, blob.ErrDigestMismatch) {
			t.Fatalf("Commit = %v, want ErrDigestMismatch", err)
		}
		checkOps(t, r.take(), []string{
			"create uploads/u",
			"write uploads/u",
			"sync uploads/u",
			"close uploads/u",
			"remove uploads/u",
		})
	})

	t.Run("invalid digest", func(t *testing.T) {
		s, r := newRecStore(t)
		w := mustUpload(t, s, "u", blob.UploadState{})
		r.take()
		if _, err := w.Commit(t.Context(), "sha256:../../uploads/u", -1); !errors.Is(err, blob.ErrInvalid) {
			t.Fatalf("Commit = %v, want ErrInvalid", err)
		}
		checkOps(t, r.take(), []string{"close uploads/u"})
		for _, err := range []error{
			s.Delete(t.Context(), "sha256:../../uploads/u"),
			s.AbortUpload(t.Context(), "../uploads/u"),
		} {
			if !errors.Is(err, blob.ErrInvalid) {
				t.Errorf("got %v, want ErrInvalid", err)
			}
		}
		if _, err := s.Upload(t.Context(), "../u", blob.UploadState{}); !errors.Is(err, blob.ErrInvalid) {
			t.Errorf("Upload = %v, want ErrInvalid", err)
		}
		checkOps(t, r.take(), nil)
		s.AbortUpload(t.Context(), "u")
	})
}

func checkOps(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("calls:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

var errInjected = errors.New("injected failure")

// TestCommitFaults injects a failure at each step of a commit: Commit
// fails, the blob is not visible (unless the rename already happened), and
// the failed step is not retried.
func TestCommitFaults(t *testing.T) {
	data := []byte("faulty bytes")
	d := sha256Of(data)
	dir := "blobs/sha256/" + d.Encoded()[:2]
	for _, tc := range []struct {
		op      string
		visible bool // the blob is in place despite the error
		kept    bool // the upload's data is still there
	}{
		{op: "sync uploads/u", kept: true},
		{op: "close uploads/u", kept: true},
		{op: "mkdirall " + dir, kept: true},
		{op: "rename uploads/u " + blobRel(d), kept: true},
		{op: "syncdir " + dir, visible: true},
		{op: "syncdir blobs/sha256", visible: true},
	} {
		t.Run(tc.op, func(t *testing.T) {
			s, r := newRecStore(t)
			w := mustUpload(t, s, "u", blob.UploadState{})
			mustWrite(t, w, data)
			r.inject = func(op string) error {
				if op == tc.op {
					return errInjected
				}
				return nil
			}
			_, err := w.Commit(t.Context(), d, int64(len(data)))
			if !errors.Is(err, errInjected) {
				t.Fatalf("Commit = %v, want the injected error", err)
			}
			if n := r.count(tc.op); n != 1 {
				t.Errorf("%q called %d times, want once (no retry)", tc.op, n)
			}
			if _, err := w.Commit(t.Context(), d, int64(len(data))); err == nil {
				t.Errorf("second Commit succeeded; Commit always closes")
			}
			r.inject = nil
			if tc.visible {
				if _, err := s.Stat(t.Context(), d); err != nil {
					t.Errorf("Stat after a failed directory sync: %v", err)
				}
			} else {
				checkNothingVisible(t, s, d)
			}
			if got := uploadIDs(t, s); len(got) == 0 == tc.kept {
				t.Errorf("uploads after the failure = %q, want data kept: %v", got, tc.kept)
			}
			if err := s.AbortUpload(t.Context(), "u"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestStateSyncFailure: a failed fsync in State poisons the writer; it is
// reported and never retried, by State or by Commit.
func TestStateSyncFailure(t *testing.T) {
	s, r := newRecStore(t)
	data := []byte("never durable")
	d := sha256Of(data)
	w := mustUpload(t, s, "u", blob.UploadState{})
	mustWrite(t, w, data)
	r.inject = func(op string) error {
		if op == "sync uploads/u" {
			return errInjected
		}
		return nil
	}
	if _, err := w.State(); !errors.Is(err, errInjected) {
		t.Fatalf("State = %v, want the injected error", err)
	}
	r.inject = nil
	if _, err := w.State(); !errors.Is(err, errInjected) {
		t.Errorf("second State = %v, want the first failure again", err)
	}
	if _, err := w.Write([]byte("more")); !errors.Is(err, errInjected) {
		t.Errorf("Write after failed sync = %v, want the failure", err)
	}
	if _, err := w.Commit(t.Context(), d, int64(len(data))); !errors.Is(err, errInjected) {
		t.Errorf("Commit after failed sync = %v, want the failure", err)
	}
	if n := r.count("sync uploads/u"); n != 1 {
		t.Errorf("file synced %d times, want once", n)
	}
	checkNothingVisible(t, s, d)
	if err := s.AbortUpload(t.Context(), "u"); err != nil {
		t.Fatal(err)
	}
}

// TestWriteNoSpace: a write that fails part-way (a full disk) is reported
// with what was written; the writer then refuses to go on, nothing becomes
// visible, and the upload resumes from the last state.
func TestWriteNoSpace(t *testing.T) {
	s, r := newRecStore(t)
	a, b := []byte("saved part "), []byte("lost part, disk full")
	w := mustUpload(t, s, "u", blob.UploadState{})
	mustWrite(t, w, a)
	st, err := w.State()
	if err != nil {
		t.Fatal(err)
	}
	r.inject = func(op string) error {
		if op == "write uploads/u" {
			return syscall.ENOSPC
		}
		return nil
	}
	n, err := w.Write(b)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Write = %v, want ENOSPC", err)
	}
	if n != len(b)/2 {
		t.Errorf("Write = %d bytes, want %d (what reached the file)", n, len(b)/2)
	}
	r.inject = nil
	if _, err := w.Write(b); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Write after ENOSPC = %v, want the same error", err)
	}
	if _, err := w.State(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("State after ENOSPC = %v, want the same error", err)
	}
	full := append(slices.Clone(a), b...)
	if _, err := w.Commit(t.Context(), sha256Of(full), int64(len(full))); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Commit after ENOSPC = %v, want the same error", err)
	}
	checkNothingVisible(t, s, sha256Of(full))

	// Space is back: resume from the saved state.
	w = mustUpload(t, s, "u", st)
	mustWrite(t, w, b)
	mustCommit(t, w, sha256Of(full), int64(len(full)))
	if got := uploadIDs(t, s); len(got) != 0 {
		t.Errorf("uploads after commit = %q", got)
	}
}

// TestWriteCountsWritten: the offset and hash advance by what the file
// took, not by len(p) (containerd's writer adds len(p)).
func TestWriteCountsWritten(t *testing.T) {
	s, r := newRecStore(t)
	w := mustUpload(t, s, "u", blob.UploadState{})
	r.inject = func(op string) error {
		if op == "write uploads/u" {
			return syscall.ENOSPC
		}
		return nil
	}
	n, _ := w.Write([]byte("0123456789"))
	ww := w.(*writer)
	if ww.size != int64(n) || n != 5 {
		t.Errorf("after a %d-byte partial write, size = %d", n, ww.size)
	}
	if got, want := digest.NewDigest(blob.SHA256, ww.h), sha256Of([]byte("01234")); got != want {
		t.Errorf("hash over %s, want over the 5 bytes written (%s)", got, want)
	}
	r.inject = nil
	w.Close()
	s.AbortUpload(t.Context(), "u")
}

// TestResumeShortData: a state claiming more bytes than the upload file
// holds is refused rather than padded with zeros.
func TestResumeShortData(t *testing.T) {
	s, _ := newRecStore(t)
	w := mustUpload(t, s, "u", blob.UploadState{})
	mustWrite(t, w, []byte("0123456789"))
	st, err := w.State()
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := os.Truncate(s.uploadPath("u"), 4); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Upload(t.Context(), "u", st); !errors.Is(err, blob.ErrSizeInvalid) {
		t.Errorf("Upload = %v, want ErrSizeInvalid", err)
	}
	if fi, err := os.Stat(s.uploadPath("u")); err != nil || fi.Size() != 4 {
		t.Errorf("upload data changed: %v, %v", fi, err)
	}
	s.AbortUpload(t.Context(), "u")
}

// TestWalkSkipsStrangers: files that are not blobs or uploads are logged
// and skipped, not reported and not fatal.
func TestWalkSkipsStrangers(t *testing.T) {
	s, _ := newRecStore(t)
	var logs bytes.Buffer
	s.logger = slog.New(slog.NewTextHandler(&logs, nil))
	w := mustUpload(t, s, "u", blob.UploadState{})
	mustWrite(t, w, []byte("blob"))
	d := sha256Of([]byte("blob"))
	mustCommit(t, w, d, 4)
	w = mustUpload(t, s, "pending", blob.UploadState{})
	w.Close()

	hex := d.Encoded()
	for _, p := range []string{
		"blobs/sha256/" + hex[:2] + "/notes.txt",
		"blobs/sha256/" + hex[:2] + "/" + strings.ToUpper(hex),
		"blobs/sha256/zz/" + hex,                          // wrong prefix
		"blobs/sha256/" + flipPrefix(hex[:2]) + "/" + hex, // in another prefix's directory
		"blobs/sha256/" + hex[:2] + "/" + hex[:10],        // short
		"blobs/sha256/stray",                              // file at prefix level
		"blobs/sha512/" + hex[:2] + "/" + hex,             // sha256 length under sha512
		"blobs/md5/x",                                     // unknown algorithm
		"uploads/has.dot",                                 // not an upload id
	} {
		path := filepath.Join(s.root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(s.root, "blobs/sha256", hex[:2], hex[:2]+strings.Repeat("a", 62)), 0o755); err != nil {
		t.Fatal(err)
	}

	var got []digest.Digest
	if err := s.Walk(t.Context(), func(info blob.Info) error {
		got = append(got, info.Digest)
		return nil
	}); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if !slices.Equal(got, []digest.Digest{d}) {
		t.Errorf("Walk = %v, want only %s", got, d)
	}
	if ids := uploadIDs(t, s); !slices.Equal(ids, []string{"pending"}) {
		t.Errorf("WalkUploads = %q, want [pending]", ids)
	}
	// The 9 strangers in blobs/ and the one in uploads/.
	if n := strings.Count(logs.String(), "level=WARN msg=\"blob store: skipping unexpected entry\""); n != 10 {
		t.Errorf("%d warnings, want 10:\n%s", n, logs.String())
	}
}

func flipPrefix(p string) string {
	if p == "00" {
		return "01"
	}
	return "00"
}

func uploadIDs(t *testing.T, s *Store) []string {
	t.Helper()
	var ids []string
	if err := s.WalkUploads(t.Context(), func(id string, _ time.Time) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestCommitExistingRefreshesTime: committing bytes that already exist (an
// old file, perhaps garbage without a row) makes the file look new, so gc's
// grace period protects it until the committer links it.
func TestCommitExistingRefreshesTime(t *testing.T) {
	s, _ := newRecStore(t)
	data := []byte("dedup")
	d := sha256Of(data)
	w := mustUpload(t, s, "first", blob.UploadState{})
	mustWrite(t, w, data)
	mustCommit(t, w, d, int64(len(data)))
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(s.blobPath(d), old, old); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	w = mustUpload(t, s, "again", blob.UploadState{})
	mustWrite(t, w, data)
	info, err := w.Commit(t.Context(), d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := s.Stat(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if fi.ModTime.Before(before.Add(-time.Second)) || info.ModTime.Before(before.Add(-time.Second)) {
		t.Errorf("ModTime after a dedup commit = %v (Commit said %v), want >= %v", fi.ModTime, info.ModTime, before)
	}
}

// TestCommitExistingRemovedMeanwhile: gc removes the existing blob between
// Commit's Stat and its time refresh; the upload's own bytes are committed
// instead, never a "not found" for a blob the client just sent whole.
func TestCommitExistingRemovedMeanwhile(t *testing.T) {
	s, r := newRecStore(t)
	data := []byte("dedup then gone")
	d := sha256Of(data)
	w := mustUpload(t, s, "first", blob.UploadState{})
	mustWrite(t, w, data)
	mustCommit(t, w, d, int64(len(data)))
	r.inject = func(op string) error {
		if strings.HasPrefix(op, "chtimes ") {
			if err := os.Remove(s.blobPath(d)); err != nil { // gc, at the worst moment
				t.Error(err)
			}
			return os.ErrNotExist
		}
		return nil
	}
	w = mustUpload(t, s, "again", blob.UploadState{})
	mustWrite(t, w, data)
	if _, err := w.Commit(t.Context(), d, int64(len(data))); err != nil {
		t.Fatalf("Commit after the existing blob vanished: %v", err)
	}
	r.inject = nil
	rc, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, _ := io.ReadAll(rc)
	if string(got) != string(data) {
		t.Fatalf("blob = %q", got)
	}
}

// writeLarge writes n copies of a 1 MiB pattern to w and returns their
// digest.
func writeLarge(t *testing.T, w blob.Writer, n int) (digest.Digest, int64) {
	t.Helper()
	buf := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	h := sha256.New()
	for range n {
		mustWrite(t, w, buf)
		h.Write(buf)
	}
	return digest.NewDigest(digest.SHA256, h), int64(n * len(buf))
}

// TestSyncAhead: a large upload is synced while it is written, not only at
// the end, and still synced at Commit (the background syncs are early
// starts, the one at Commit is what the acknowledgement rests on).
func TestSyncAhead(t *testing.T) {
	s, r := newRecStore(t)
	w := mustUpload(t, s, "u", blob.UploadState{})
	n := 3*syncAhead>>20 + 1
	d, size := writeLarge(t, w, n)
	// The last background sync may not have reached the file yet (it
	// records its call on its own goroutine): wait for it, so that it is
	// counted here and not among the commit's calls.
	if err := w.(*writer).waitSync(); err != nil {
		t.Fatal(err)
	}
	ops := r.take()
	if got := slices.Index(ops, "sync uploads/u"); got < 0 {
		t.Fatalf("no sync while writing %d MiB: %q", n, ops)
	}
	mustCommit(t, w, d, size)
	checkOps(t, r.take()[:2], []string{"sync uploads/u", "close uploads/u"})
	if fi, err := os.Stat(filepath.Join(r.root, blobRel(d))); err != nil || fi.Size() != size {
		t.Fatalf("committed blob: %v, %v", fi, err)
	}
}

// TestSyncAheadFailure: a background sync that fails ends the writer as a
// failed State does, though a later sync would succeed: later writes,
// states and the commit report it, and nothing becomes visible.
func TestSyncAheadFailure(t *testing.T) {
	s, r := newRecStore(t)
	w := mustUpload(t, s, "u", blob.UploadState{})
	var failed sync.Once
	r.inject = func(op string) (err error) {
		if op == "sync uploads/u" {
			failed.Do(func() { err = errInjected })
		}
		return err
	}
	buf := bytes.Repeat([]byte{'x'}, 1<<20)
	h := sha256.New()
	var werr error
	for range 3 * syncAhead >> 20 {
		if _, werr = w.Write(buf); werr != nil {
			break
		}
		h.Write(buf)
	}
	if werr != nil && !errors.Is(werr, errInjected) {
		t.Fatalf("Write = %v, want nil or the injected error", werr)
	}
	if r.count("sync uploads/u") == 0 {
		t.Fatal("no background sync while writing")
	}
	if _, err := w.State(); !errors.Is(err, errInjected) {
		t.Errorf("State after a failed background sync = %v, want the injected error", err)
	}
	d := digest.NewDigest(digest.SHA256, h)
	if _, err := w.Commit(t.Context(), d, -1); !errors.Is(err, errInjected) {
		t.Errorf("Commit after a failed background sync = %v, want the injected error", err)
	}
	checkNothingVisible(t, s, d)
}

// TestSyncAheadResumed: a resumed upload (a chunked push's next PATCH)
// counts syncAhead from where it resumed, and a State restarts the count:
// a chunk under syncAhead is synced once, by its State, not also in the
// background from its first write.
func TestSyncAheadResumed(t *testing.T) {
	s, r := newRecStore(t)
	w := mustUpload(t, s, "u", blob.UploadState{})
	writeLarge(t, w, syncAhead>>20+1)
	st, err := w.State()
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, w, []byte("after the state"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r.take()
	w = mustUpload(t, s, "u", st)
	writeLarge(t, w, syncAhead>>20-1)
	if n := r.count("sync uploads/u"); n != 0 {
		t.Errorf("a resumed writer synced %d times before writing syncAhead bytes, want 0", n)
	}
	if _, err := w.State(); err != nil {
		t.Fatal(err)
	}
	if n := r.count("sync uploads/u"); n != 1 {
		t.Errorf("synced %d times for one chunk, want once (its State)", n)
	}
	w.Close()
}

// TestCommitDataGone: an upload whose data file was removed under its
// writer (expired) fails its commit with ErrNotFound, so the registry
// answers BLOB_UPLOAD_UNKNOWN and ends the session, for sha512 (whose
// commit reads the file again) as for sha256 (found by review: sha512
// gave a bare ErrNotExist, a 500).
func TestCommitDataGone(t *testing.T) {
	data := []byte("expired under the writer")
	for _, d := range []digest.Digest{digest.FromBytes(data), sha512Of(data)} {
		t.Run(string(d.Algorithm()), func(t *testing.T) {
			s, _ := newRecStore(t)
			w := mustUpload(t, s, "u", blob.UploadState{})
			mustWrite(t, w, data)
			if err := os.Remove(s.uploadPath("u")); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Commit(t.Context(), d, int64(len(data))); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("Commit with the data gone: %v, want ErrNotFound", err)
			}
			if _, err := s.Stat(t.Context(), d); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("Stat(%s) after the failed commit: %v, want ErrNotFound", d, err)
			}
		})
	}
}

package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
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

// errCrashed is what every call returns once the simulated machine has
// lost power.
var errCrashed = errors.New("crashed")

// crashFS is a crashable filesystem over a real directory, after pebble's
// vfs.NewCrashableMem and LevelDB's fault_injection_test env: it tracks
// what is durable, and crash() puts the directory back to only that:
//   - a file's data is durable as of its last successful Sync;
//   - a name (created, renamed or removed) is durable only once its
//     directory is synced (SyncDir), and a new directory only once its
//     parent is;
//   - a rename not followed by a sync of the receiving directory is lost.
//
// Every call through the seam is one step; with budget > 0 the step that
// exhausts it is where power fails: that call and all later ones fail with
// errCrashed and have no effect.
type crashFS struct {
	root string

	mu      sync.Mutex
	steps   int
	budget  int // 0: no crash planned
	crashed bool
	// failSync, if set, is returned by file syncs (which then make
	// nothing durable), as a device error would.
	failSync error

	next     int
	names    map[string]int  // live file name -> inode
	dirs     map[string]bool // live directories
	durNames map[string]int  // durable file name -> inode
	durDirs  map[string]bool // durable directories
	synced   map[int][]byte  // inode -> durable data
}

func newCrashFS(root string) *crashFS {
	return &crashFS{root: root, names: map[string]int{}, dirs: map[string]bool{root: true},
		durNames: map[string]int{}, durDirs: map[string]bool{root: true}, synced: map[int][]byte{}}
}

// step counts a call and reports whether it may happen.
func (c *crashFS) step() error {
	if c.crashed {
		return errCrashed
	}
	c.steps++
	if c.budget > 0 && c.steps >= c.budget {
		c.crashed = true
		return errCrashed
	}
	return nil
}

func (c *crashFS) OpenFile(name string, flag int, perm iofs.FileMode) (file, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.step(); err != nil {
		return nil, err
	}
	f, err := osFS{}.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	ino, ok := c.names[name]
	if !ok {
		c.next++
		ino = c.next
		c.names[name] = ino
	}
	return &crashFile{file: f, c: c, ino: ino}, nil
}

func (c *crashFS) Rename(oldpath, newpath string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.step(); err != nil {
		return err
	}
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	c.names[newpath] = c.names[oldpath]
	delete(c.names, oldpath)
	return nil
}

func (c *crashFS) Remove(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.step(); err != nil {
		return err
	}
	if err := os.Remove(name); err != nil {
		return err
	}
	delete(c.names, name)
	return nil
}

// ReadDir lists what is there now (reading changes nothing durable).
func (c *crashFS) ReadDir(path string) ([]iofs.DirEntry, error) { return os.ReadDir(path) }

func (c *crashFS) MkdirAll(path string, perm iofs.FileMode) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.step(); err != nil {
		return err
	}
	if err := os.MkdirAll(path, perm); err != nil {
		return err
	}
	for d := path; d != c.root && strings.HasPrefix(d, c.root); d = filepath.Dir(d) {
		c.dirs[d] = true
	}
	return nil
}

func (c *crashFS) Chtimes(name string, atime, mtime time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.step(); err != nil {
		return err
	}
	return os.Chtimes(name, atime, mtime)
}

// SyncDir makes the directory's current entries durable: files and
// subdirectories present, and removals and renames away.
func (c *crashFS) SyncDir(path string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.step(); err != nil {
		return err
	}
	if err := (osFS{}).SyncDir(path); err != nil {
		return err
	}
	for n := range c.durNames {
		if filepath.Dir(n) == path {
			delete(c.durNames, n)
		}
	}
	for n, ino := range c.names {
		if filepath.Dir(n) == path {
			c.durNames[n] = ino
		}
	}
	for d := range c.dirs {
		if filepath.Dir(d) == path {
			c.durDirs[d] = true
		}
	}
	return nil
}

// crash loses power: the directory tree under root becomes exactly what was
// durable. Afterwards the filesystem works again (for the next "boot").
func (c *crashFS) crash(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	// A durable name in a directory that is not durable is lost with it.
	reachable := func(p string) bool {
		for d := filepath.Dir(p); d != c.root; d = filepath.Dir(d) {
			if !c.durDirs[d] {
				return false
			}
		}
		return true
	}
	entries, err := os.ReadDir(c.root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(c.root, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	dirs := map[string]bool{c.root: true}
	for d := range c.durDirs {
		if reachable(d) {
			dirs[d] = true
		}
	}
	for _, d := range slices.Sorted(func(yield func(string) bool) {
		for d := range dirs {
			if !yield(d) {
				return
			}
		}
	}) {
		if err := os.MkdirAll(d, dirPerm); err != nil {
			t.Fatal(err)
		}
	}
	names := map[string]int{}
	for n, ino := range c.durNames {
		if !reachable(n) || !dirs[filepath.Dir(n)] {
			continue
		}
		if err := os.WriteFile(n, c.synced[ino], filePerm); err != nil {
			t.Fatal(err)
		}
		names[n] = ino
	}
	c.names, c.durNames = names, maps(names)
	c.dirs, c.durDirs = dirs, maps(dirs)
	c.crashed, c.budget, c.steps = false, 0, 0
}

func maps[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// crashFile is a file of a crashFS.
type crashFile struct {
	file
	c   *crashFS
	ino int
}

func (f *crashFile) Write(p []byte) (int, error) {
	f.c.mu.Lock()
	err := f.c.step()
	f.c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return f.file.Write(p)
}

func (f *crashFile) Truncate(size int64) error {
	f.c.mu.Lock()
	err := f.c.step()
	f.c.mu.Unlock()
	if err != nil {
		return err
	}
	return f.file.Truncate(size)
}

// Sync makes the file's current data durable, unless failSync says the
// device failed, in which case nothing becomes durable.
func (f *crashFile) Sync() error {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.c.step(); err != nil {
		return err
	}
	if f.c.failSync != nil {
		return f.c.failSync
	}
	if err := f.file.Sync(); err != nil {
		return err
	}
	of, ok := f.file.(*os.File)
	if !ok {
		panic("crashFile over a non-os file")
	}
	data, err := os.ReadFile(of.Name())
	if err != nil {
		return err
	}
	f.c.synced[f.ino] = data
	return nil
}

// crashOutcome records what the scenario got acknowledged before the
// crash.
type crashOutcome struct {
	chunk     blob.UploadState // the first chunk's acknowledged state, if any
	chunkAck  bool
	commitA   bool // the resumed upload committed as A
	commitB   bool // a second blob committed
	commitDup bool // A committed again (dedup)
}

// crashScenario writes through s until its first error (after a crash,
// every call fails): a chunked upload with an acknowledged first chunk,
// resumed and committed; a second blob; and the first again (dedup).
func crashScenario(s *Store, a1, a2, b []byte) (out crashOutcome) {
	ctx := context.Background()
	a := append(append([]byte{}, a1...), a2...)
	w, err := s.Upload(ctx, "upload-a", blob.UploadState{})
	if err != nil {
		return
	}
	if _, err := w.Write(a1); err != nil {
		w.Close()
		return
	}
	st, err := w.State()
	if err != nil {
		w.Close()
		return
	}
	out.chunk, out.chunkAck = st, true
	w.Close()
	if w, err = s.Upload(ctx, "upload-a", st); err != nil {
		return
	}
	if _, err := w.Write(a2); err != nil {
		w.Close()
		return
	}
	if _, err := w.Commit(ctx, digest.FromBytes(a), int64(len(a))); err != nil {
		return
	}
	out.commitA = true

	for i, data := range [][]byte{b, a} {
		w, err := s.Upload(ctx, "upload-"+string(rune('b'+i)), blob.UploadState{})
		if err != nil {
			return
		}
		if _, err := w.Write(data); err != nil {
			w.Close()
			return
		}
		if _, err := w.Commit(ctx, digest.FromBytes(data), int64(len(data))); err != nil {
			return
		}
		if i == 0 {
			out.commitB = true
		} else {
			out.commitDup = true
		}
	}
	return out
}

// checkAfterCrash opens the store again (real filesystem) and checks the
// promises: an acknowledged commit is visible with all its bytes; an
// unacknowledged one is not visible; every visible blob hashes to its
// name; an acknowledged chunk can be resumed.
func checkAfterCrash(t *testing.T, root string, out crashOutcome, a1, a2, b []byte) {
	t.Helper()
	ctx := context.Background()
	s, err := New(root, nil)
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	a := append(append([]byte{}, a1...), a2...)
	readBack := func(d digest.Digest) ([]byte, bool) {
		f, err := s.Open(ctx, d)
		if errors.Is(err, blob.ErrNotFound) {
			return nil, false
		}
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(f); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes(), true
	}
	for _, c := range []struct {
		data  []byte
		acked bool
	}{{a, out.commitA}, {b, out.commitB}} {
		d := digest.FromBytes(c.data)
		got, visible := readBack(d)
		switch {
		case c.acked && !visible:
			t.Fatalf("acknowledged blob %s lost in the crash", d)
		case !c.acked && visible:
			t.Fatalf("unacknowledged blob %s visible after the crash", d)
		case visible && !bytes.Equal(got, c.data):
			t.Fatalf("blob %s visible with %d wrong bytes", d, len(got))
		}
	}
	if err := s.Walk(ctx, func(info blob.Info) error {
		got, _ := readBack(info.Digest)
		if digest.FromBytes(got) != info.Digest {
			t.Errorf("visible blob %s holds other bytes (%d)", info.Digest, len(got))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if out.chunkAck && !out.commitA {
		// The acknowledged chunk survived: resume from its state and
		// finish the blob.
		w, err := s.Upload(ctx, "upload-a", out.chunk)
		if err != nil {
			t.Fatalf("acknowledged chunk lost in the crash: %v", err)
		}
		if _, err := w.Write(a2); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Commit(ctx, digest.FromBytes(a), int64(len(a))); err != nil {
			t.Fatalf("resuming an acknowledged chunk after the crash: %v", err)
		}
	}
}

// TestCrashAtEveryStep loses power at every call the store makes through
// its seam, in turn, and checks after each crash that acknowledged work
// survived and unacknowledged work left no visible blob (only upload data).
func TestCrashAtEveryStep(t *testing.T) {
	a1, a2 := bytes.Repeat([]byte("first chunk "), 100), bytes.Repeat([]byte("second chunk "), 100)
	b := []byte("another blob")
	total := 0
	for crashAt := 1; ; crashAt++ {
		root := t.TempDir()
		cfs := newCrashFS(root)
		s, err := newStore(root, nil, cfs)
		if err != nil {
			t.Fatal(err)
		}
		cfs.budget = cfs.steps + crashAt
		out := crashScenario(s, a1, a2, b)
		completed := !cfs.crashed
		cfs.crash(t)
		checkAfterCrash(t, root, out, a1, a2, b)
		if completed {
			if !out.commitA || !out.commitB || !out.commitDup {
				t.Fatalf("scenario ran without a crash but did not complete: %+v", out)
			}
			total = crashAt - 1
			break
		}
		if crashAt > 200 {
			t.Fatal("scenario never completes")
		}
	}
	if total < 15 {
		t.Fatalf("only %d crash points; the scenario is not exercising the store", total)
	}
	t.Logf("crashed at each of %d steps", total)
}

// TestCrashModelCatchesMissingSync checks the model itself: a rename with
// no directory sync, or data never synced, is lost in the crash.
func TestCrashModelCatchesMissingSync(t *testing.T) {
	root := t.TempDir()
	cfs := newCrashFS(root)
	if err := cfs.MkdirAll(filepath.Join(root, "d"), dirPerm); err != nil {
		t.Fatal(err)
	}
	if err := cfs.SyncDir(root); err != nil {
		t.Fatal(err)
	}
	f, err := cfs.OpenFile(filepath.Join(root, "d", "x"), os.O_CREATE|os.O_WRONLY, filePerm)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("synced"))
	f.Sync()
	f.Write([]byte(" and not"))
	f.Close()
	cfs.SyncDir(filepath.Join(root, "d"))
	if err := cfs.Rename(filepath.Join(root, "d", "x"), filepath.Join(root, "d", "y")); err != nil {
		t.Fatal(err)
	}
	cfs.crash(t)
	if got, err := os.ReadFile(filepath.Join(root, "d", "x")); err != nil || string(got) != "synced" {
		t.Fatalf("after crash: x = %q, %v; want the synced data under the old name", got, err)
	}
	if _, err := os.Stat(filepath.Join(root, "d", "y")); !errors.Is(err, iofs.ErrNotExist) {
		t.Fatalf("unsynced rename survived the crash: %v", err)
	}
}

// TestCrashFailedSync: when fsync fails, the store reports it, never
// retries it into a success, and the crash then shows nothing.
func TestCrashFailedSync(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	cfs := newCrashFS(root)
	s, err := newStore(root, nil, cfs)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("the device fails its fsync")
	d := digest.FromBytes(data)
	w, err := s.Upload(ctx, "u", blob.UploadState{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	cfs.mu.Lock()
	cfs.failSync = syscall.EIO
	cfs.mu.Unlock()
	if _, err := w.State(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("State with a failing fsync: %v", err)
	}
	// The device recovers; the writer must not trust the data now.
	cfs.mu.Lock()
	cfs.failSync = nil
	cfs.mu.Unlock()
	if _, err := w.State(); err == nil {
		t.Fatal("State succeeded after a failed fsync (a retried fsync can falsely succeed)")
	}
	if _, err := w.Commit(ctx, d, int64(len(data))); err == nil {
		t.Fatal("Commit succeeded after a failed fsync")
	}
	cfs.crash(t)
	s2, err := New(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Stat(ctx, d); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("blob visible after a failed fsync and a crash: %v", err)
	}
}

// TestCrashSharedNewPrefixDir: commit A has created blobs/sha256/<xx> and
// not yet synced blobs/sha256; commit B of another digest with the same
// prefix finds the directory and is acknowledged. A crash then must not
// lose B (B syncs the parent too).
func TestCrashSharedNewPrefixDir(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	c := newCrashFS(root)
	s, err := newStore(root, nil, c)
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	var d digest.Digest
	for i := 0; ; i++ {
		data = fmt.Appendf(nil, "blob %d", i)
		if d = digest.FromBytes(data); d.Encoded()[:2] == "ab" {
			break
		}
	}
	// Commit A's MkdirAll; A stalls before it syncs blobs/sha256.
	if err := c.MkdirAll(filepath.Join(root, "blobs", "sha256", "ab"), dirPerm); err != nil {
		t.Fatal(err)
	}
	w, err := s.Upload(t.Context(), "b", blob.UploadState{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(t.Context(), d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	c.crash(t)
	if _, err := s.Stat(t.Context(), d); err != nil {
		t.Fatalf("acknowledged commit lost in a crash: %v", err)
	}
}

// TestCrashPrefixDirBeforeOpen: a prefix directory made before the store
// opened (by a process that crashed, or another one, before syncing its
// entry) is made durable by the open, so a commit into it, which does not
// sync blobs/sha256 again, survives a crash.
func TestCrashPrefixDirBeforeOpen(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	c := newCrashFS(root)
	if _, err := newStore(root, nil, c); err != nil {
		t.Fatal(err)
	}
	data := []byte("blob in cd")
	for i := 0; sha256Of(data).Encoded()[:2] != "cd"; i++ {
		data = fmt.Appendf(nil, "blob in cd %d", i)
	}
	d := sha256Of(data)
	if err := c.MkdirAll(filepath.Join(root, "blobs", "sha256", "cd"), dirPerm); err != nil {
		t.Fatal(err)
	}
	s, err := newStore(root, nil, c)
	if err != nil {
		t.Fatal(err)
	}
	w := mustUpload(t, s, "b", blob.UploadState{})
	mustWrite(t, w, data)
	mustCommit(t, w, d, int64(len(data)))
	c.crash(t)
	if _, err := s.Stat(t.Context(), d); err != nil {
		t.Fatalf("acknowledged commit lost in a crash: %v", err)
	}
}

// TestCrashCutThenCommit: a resumed upload cuts the bytes written after
// its state. Committed at once, with nothing written, its file must still
// be synced: the cut is not durable without it, and a crash would bring
// the cut bytes back inside a blob whose name says otherwise.
func TestCrashCutThenCommit(t *testing.T) {
	root := t.TempDir()
	c := newCrashFS(root)
	s, err := newStore(root, nil, c)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("acknowledged chunk")
	w := mustUpload(t, s, "a", blob.UploadState{})
	mustWrite(t, w, data)
	st, err := w.State()
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, w, []byte(", then bytes never acknowledged"))
	// A background sync could have made them durable.
	if err := w.(*writer).f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = mustUpload(t, s, "a", st)
	d := sha256Of(data)
	mustCommit(t, w, d, int64(len(data)))
	c.crash(t)

	s, err = New(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatalf("acknowledged commit lost in a crash: %v", err)
	}
	defer rc.Close()
	var got bytes.Buffer
	if _, err := got.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("blob %s holds %q after a crash, want %q", d, got.Bytes(), data)
	}
}

package fs

import (
	"io"
	iofs "io/fs"
	"os"
	"time"
)

// fsys is the seam between the store and the operating system for the
// operations whose order decides crash safety: creating and writing upload
// files, syncing, renaming into place, syncing directories and removing.
// Production uses osFS; tests wrap it to record the calls in order and to
// inject failures, as pebble's vfs.WithLogging and errorfs do. Read-only
// operations (Stat, Open, ReadDir) go to package os directly, except the
// listing of blobs/<alg> at open, whose order against that directory's
// sync decides which prefix directories are known durable.
type fsys interface {
	OpenFile(name string, flag int, perm iofs.FileMode) (file, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	MkdirAll(path string, perm iofs.FileMode) error
	// Chtimes sets a file's access and modification times.
	Chtimes(name string, atime, mtime time.Time) error
	// SyncDir makes the directory's entries (created, renamed or removed
	// names) durable.
	SyncDir(path string) error
	// ReadDir lists a directory, as os.ReadDir.
	ReadDir(path string) ([]iofs.DirEntry, error)
}

// file is the part of *os.File the writer uses.
type file interface {
	io.Reader
	io.Writer
	io.Seeker
	io.Closer
	Sync() error
	Truncate(size int64) error
	Stat() (iofs.FileInfo, error)
}

// osFS is the real filesystem.
type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm iofs.FileMode) (file, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		// Return a nil interface, not a typed nil *os.File.
		return nil, err
	}
	return f, nil
}

func (osFS) ReadDir(path string) ([]iofs.DirEntry, error)   { return os.ReadDir(path) }
func (osFS) Rename(oldpath, newpath string) error           { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error                       { return os.Remove(name) }
func (osFS) MkdirAll(path string, perm iofs.FileMode) error { return os.MkdirAll(path, perm) }
func (osFS) Chtimes(name string, atime, mtime time.Time) error {
	return os.Chtimes(name, atime, mtime)
}

func (osFS) SyncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

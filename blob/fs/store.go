package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
)

const (
	dirPerm  = 0o755
	filePerm = 0o644
)

// algorithms are the digest algorithms stored, each in blobs/<alg>.
var algorithms = []digest.Algorithm{blob.SHA256, blob.SHA512}

// Store keeps blobs in a directory tree. It is safe for concurrent use; a
// Writer is not (one Writer per upload id at a time, see blob.Ingester).
type Store struct {
	root   string
	logger *slog.Logger
	fs     fsys
	// named holds the prefix directories (blobs/<alg>/<xx>) whose entry
	// in blobs/<alg> is known durable: present when the store opened and
	// blobs/<alg> was synced, or synced since by a commit. A commit into
	// one of them needs no sync of blobs/<alg>: on a disk that flushes its
	// cache at every fsync, that is one flush fewer per blob.
	named sync.Map // path -> struct{}
}

var _ blob.Store = (*Store)(nil)

// New opens (creating if needed) a store rooted at root. logger receives
// warnings about unexpected files and failed clean-ups; nil discards them.
func New(root string, logger *slog.Logger) (*Store, error) {
	return newStore(root, logger, osFS{})
}

func newStore(root string, logger *slog.Logger, fsys fsys) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("blob store %s: %w", root, err)
	}
	s := &Store{root: abs, logger: logger, fs: fsys}
	dirs := []string{s.uploadsDir()}
	for _, alg := range algorithms {
		dirs = append(dirs, filepath.Join(abs, "blobs", string(alg)))
	}
	for _, d := range dirs {
		if err := fsys.MkdirAll(d, dirPerm); err != nil {
			return nil, fmt.Errorf("blob store %s: %w", abs, err)
		}
	}
	// The prefix directories there now are listed before blobs/<alg> is
	// synced below, so each one listed is durable once that sync returns
	// (one made by another process meanwhile is not listed, and is synced
	// by the first commit into it).
	var prefixes []string
	for _, alg := range algorithms {
		d := filepath.Join(abs, "blobs", string(alg))
		entries, err := fsys.ReadDir(d)
		if err != nil {
			return nil, fmt.Errorf("blob store %s: %w", abs, err)
		}
		for _, e := range entries {
			if e.IsDir() {
				prefixes = append(prefixes, filepath.Join(d, e.Name()))
			}
		}
	}
	// Make the skeleton durable once, so commits only ever need to sync
	// below blobs/<alg>, and blobs/<alg> only for a new prefix directory.
	syncs := []string{abs, filepath.Join(abs, "blobs")}
	for _, alg := range algorithms {
		syncs = append(syncs, filepath.Join(abs, "blobs", string(alg)))
	}
	for _, d := range syncs {
		if err := fsys.SyncDir(d); err != nil {
			return nil, fmt.Errorf("blob store %s: sync %s: %w", abs, d, err)
		}
	}
	for _, p := range prefixes {
		s.named.Store(p, struct{}{})
	}
	return s, nil
}

// nameDurable makes the entry of prefix directory dir durable in its
// parent, unless it is known to be, and remembers it.
func (s *Store) nameDurable(dir string) error {
	if _, ok := s.named.Load(dir); ok {
		return nil
	}
	parent := filepath.Dir(dir)
	if err := s.fs.SyncDir(parent); err != nil {
		return fmt.Errorf("sync %s: %w", parent, err)
	}
	s.named.Store(dir, struct{}{})
	return nil
}

// Root returns the absolute path of the store's directory.
func (s *Store) Root() string { return s.root }

func (s *Store) uploadsDir() string { return filepath.Join(s.root, "uploads") }

// blobPath returns where d lives. d must have passed blob.ValidateDigest.
func (s *Store) blobPath(d digest.Digest) string {
	hex := d.Encoded()
	return filepath.Join(s.root, "blobs", string(d.Algorithm()), hex[:2], hex)
}

// uploadPath returns the data file of upload id, which must have passed
// blob.ValidateUploadID.
func (s *Store) uploadPath(id string) string {
	return filepath.Join(s.uploadsDir(), id)
}

// Stat implements blob.Provider.
func (s *Store) Stat(ctx context.Context, d digest.Digest) (blob.Info, error) {
	if err := blob.ValidateDigest(d); err != nil {
		return blob.Info{}, err
	}
	fi, err := os.Stat(s.blobPath(d))
	if err != nil {
		return blob.Info{}, blobErr(d, err)
	}
	if !fi.Mode().IsRegular() {
		return blob.Info{}, fmt.Errorf("blob %s: not a regular file: %w", d, blob.ErrNotFound)
	}
	return blob.Info{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Open implements blob.Provider. The reader is an *os.File.
func (s *Store) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, error) {
	if err := blob.ValidateDigest(d); err != nil {
		return nil, err
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		return nil, blobErr(d, err)
	}
	return f, nil
}

// Delete implements blob.Manager. Readers that already opened the blob keep
// reading it. The removal is not synced: after a crash a deleted blob may
// reappear, and is then garbage again.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	if err := blob.ValidateDigest(d); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	if err := s.fs.Remove(s.blobPath(d)); err != nil {
		return blobErr(d, err)
	}
	return nil
}

// blobErr wraps err with d's context, mapping a missing file to
// blob.ErrNotFound.
func blobErr(d digest.Digest, err error) error {
	if errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", d, blob.ErrNotFound)
	}
	return fmt.Errorf("blob %s: %w", d, err)
}

// Walk implements blob.Manager. Files that are not blobs (wrong names, in
// the wrong directory, not regular) are logged and skipped. A blob deleted
// while the walk runs may or may not be reported.
func (s *Store) Walk(ctx context.Context, fn func(blob.Info) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	blobsDir := filepath.Join(s.root, "blobs")
	algDirs, err := os.ReadDir(blobsDir)
	if err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	for _, a := range algDirs {
		alg := digest.Algorithm(a.Name())
		if !a.IsDir() || !slices.Contains(algorithms, alg) {
			s.skip(ctx, filepath.Join(blobsDir, a.Name()))
			continue
		}
		if err := s.walkAlg(ctx, alg, fn); err != nil {
			return err
		}
	}
	return nil
}

// walkAlg walks blobs/<alg>.
func (s *Store) walkAlg(ctx context.Context, alg digest.Algorithm, fn func(blob.Info) error) error {
	algDir := filepath.Join(s.root, "blobs", string(alg))
	prefixes, err := os.ReadDir(algDir)
	if err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	for _, p := range prefixes {
		if !p.IsDir() || len(p.Name()) != 2 {
			s.skip(ctx, filepath.Join(algDir, p.Name()))
			continue
		}
		dir := filepath.Join(algDir, p.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("walk blobs: %w", err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("walk blobs: %w", err)
			}
			d := digest.NewDigestFromEncoded(alg, e.Name())
			if blob.ValidateDigest(d) != nil || e.Name()[:2] != p.Name() || !e.Type().IsRegular() {
				s.skip(ctx, filepath.Join(dir, e.Name()))
				continue
			}
			fi, err := e.Info()
			if err != nil {
				if errors.Is(err, iofs.ErrNotExist) {
					continue // deleted meanwhile
				}
				return fmt.Errorf("walk blobs: %w", err)
			}
			if err := fn(blob.Info{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// skip logs a file that Walk or WalkUploads passes over.
func (s *Store) skip(ctx context.Context, path string) {
	s.logger.WarnContext(ctx, "blob store: skipping unexpected entry", "path", path)
}

// WalkUploads implements blob.Manager. Files in uploads/ whose names are not
// valid upload ids are logged and skipped.
func (s *Store) WalkUploads(ctx context.Context, fn func(id string, modTime time.Time) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("walk uploads: %w", err)
	}
	entries, err := os.ReadDir(s.uploadsDir())
	if err != nil {
		return fmt.Errorf("walk uploads: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("walk uploads: %w", err)
		}
		if blob.ValidateUploadID(e.Name()) != nil || !e.Type().IsRegular() {
			s.skip(ctx, filepath.Join(s.uploadsDir(), e.Name()))
			continue
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, iofs.ErrNotExist) {
				continue // committed or aborted meanwhile
			}
			return fmt.Errorf("walk uploads: %w", err)
		}
		if err := fn(e.Name(), fi.ModTime()); err != nil {
			return err
		}
	}
	return nil
}

// AbortUpload implements blob.Ingester.
func (s *Store) AbortUpload(ctx context.Context, id string) error {
	if err := blob.ValidateUploadID(id); err != nil {
		return err
	}
	if err := s.fs.Remove(s.uploadPath(id)); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("upload %s: %w", id, err)
	}
	return nil
}

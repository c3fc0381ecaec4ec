package fs

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
)

// parallelWrite is the size from which Write hashes and writes at once.
const parallelWrite = 64 << 10

// syncAhead is how many bytes a writer lets pile up unsynced before it
// syncs the file in the background while it goes on writing. On a disk
// whose flush waits for everything written since the last one (a virtual
// disk whose host flushes its own cache), one fsync at the end of a 256 MiB
// blob waited 130-250 ms; syncing as the data arrives leaves the final
// fsync the last few MiB. Durability still comes from the Sync at State and
// Commit: these are early starts of the same work, not a replacement.
// Over loopback, one push stream went 615 -> 704 MiB/s with 32 MiB and
// -> 817 MiB/s with 4 MiB; two streams and chunked pushes were the same
// with either (docs/performance.md).
const syncAhead = 4 << 20

// errClosed is returned by a writer used after Close or Commit.
var errClosed = errors.New("upload writer closed")

// Upload implements blob.Ingester. The zero state creates the upload file
// if needed and empties it. A non-zero state needs the upload file to hold
// at least st.Size bytes (else ErrNotFound if it is gone, ErrSizeInvalid if
// it is short) and a sha256 state over exactly those bytes (else
// ErrInvalid).
func (s *Store) Upload(ctx context.Context, id string, st blob.UploadState) (blob.Writer, error) {
	if err := blob.ValidateUploadID(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	h, err := restoreSHA256(st)
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}

	path := s.uploadPath(id)
	flag := os.O_WRONLY
	if st.Size == 0 {
		flag |= os.O_CREATE
	}
	f, err := s.fs.OpenFile(path, flag, filePerm)
	if err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			return nil, fmt.Errorf("upload %s: %w", id, blob.ErrNotFound)
		}
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	if err := resumeAt(f, st.Size); err != nil {
		f.Close()
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	// A resumed upload's name was made durable by the State that produced
	// st; a new one's is not yet.
	return &writer{s: s, id: id, path: path, f: f, h: h, size: st.Size, ahead: st.Size, named: st.Size > 0}, nil
}

// restoreSHA256 returns a sha256 hash holding st's state.
func restoreSHA256(st blob.UploadState) (hash.Hash, error) {
	h := sha256.New()
	switch {
	case st.Size < 0:
		return nil, fmt.Errorf("state size %d: %w", st.Size, blob.ErrInvalid)
	case len(st.Data) == 0 && st.Size == 0:
		return h, nil
	case len(st.Data) == 0:
		return nil, fmt.Errorf("state of %d bytes has no hash state: %w", st.Size, blob.ErrInvalid)
	}
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Data); err != nil {
		return nil, fmt.Errorf("corrupt hash state: %v: %w", err, blob.ErrInvalid)
	}
	// The standard library's sha256 state (stable across Go releases, see
	// package hash) ends with the number of bytes hashed. A state that
	// disagrees with st.Size would only show up at Commit as a digest
	// mismatch; catch it here.
	const marshaledSize = 4 + 8*4 + sha256.BlockSize + 8
	if b := st.Data; len(b) == marshaledSize && string(b[:4]) == "sha\x03" {
		if n := binary.BigEndian.Uint64(b[len(b)-8:]); n != uint64(st.Size) {
			return nil, fmt.Errorf("hash state covers %d bytes, state says %d: %w", n, st.Size, blob.ErrInvalid)
		}
	}
	return h, nil
}

// resumeAt cuts f to size, discarding bytes of unacknowledged writes, and
// positions it there for appending.
func resumeAt(f file, size int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	switch {
	case fi.Size() < size:
		return fmt.Errorf("data has %d bytes, state says %d: %w", fi.Size(), size, blob.ErrSizeInvalid)
	case fi.Size() > size:
		if err := f.Truncate(size); err != nil {
			return err
		}
	}
	_, err = f.Seek(size, io.SeekStart)
	return err
}

// writer appends to uploads/<id>. It is not safe for concurrent use.
type writer struct {
	s    *Store
	id   string
	path string
	f    file // nil once closed
	h    hash.Hash
	size int64 // bytes written to f and h
	// named: the upload file's directory entry is durable (uploads/ was
	// synced since the file was created), so a crash keeps the file.
	named bool
	// err is the first write or sync failure. After it the file can't be
	// trusted (a failed fsync may have dropped dirty pages), so the writer
	// refuses further writes, states and commits rather than retry.
	err error
	// ahead is the size at which the last background sync started; bg
	// receives that sync's result, nil when none is in flight.
	ahead int64
	bg    chan error
}

// Write implements io.Writer. Only the bytes the file accepted are hashed
// and counted. A large p is hashed while the file writes it, on another
// goroutine: a stream then goes at the pace of the slower of the two, not
// of their sum.
func (w *writer) Write(p []byte) (int, error) {
	if w.f == nil {
		return 0, fmt.Errorf("upload %s: %w", w.id, errClosed)
	}
	if w.err != nil {
		return 0, w.err
	}
	var (
		n   int
		err error
	)
	if len(p) < parallelWrite {
		n, err = w.f.Write(p)
		w.h.Write(p[:n])
	} else {
		// On a short write the hash has seen more than the file holds:
		// the error below ends the writer (w.err), so neither is used
		// again.
		done := make(chan struct{})
		go func() {
			n, err = w.f.Write(p)
			close(done)
		}()
		w.h.Write(p)
		<-done
	}
	w.size += int64(n)
	if err != nil {
		w.err = fmt.Errorf("upload %s: write: %w", w.id, err)
		return n, w.err
	}
	if w.size-w.ahead >= syncAhead {
		if err := w.syncInBackground(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// syncInBackground starts a sync of the file on another goroutine unless
// one is still running. A failed background sync ends the writer like a
// failed State: the kernel may have dropped the pages it could not write.
func (w *writer) syncInBackground() error {
	if w.bg != nil {
		select {
		case err := <-w.bg:
			w.bg = nil
			if err != nil {
				w.err = fmt.Errorf("upload %s: sync: %w", w.id, err)
				return w.err
			}
		default:
			return nil
		}
	}
	f, ch := w.f, make(chan error, 1)
	go func() { ch <- f.Sync() }()
	w.bg, w.ahead = ch, w.size
	return nil
}

// waitSync waits for the background sync in flight, if any, and records
// its failure.
func (w *writer) waitSync() error {
	if w.bg == nil {
		return w.err
	}
	err := <-w.bg
	w.bg = nil
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("upload %s: sync: %w", w.id, err)
	}
	return w.err
}

// State implements blob.Writer.
func (w *writer) State() (blob.UploadState, error) {
	if w.f == nil {
		return blob.UploadState{}, fmt.Errorf("upload %s: %w", w.id, errClosed)
	}
	if err := w.waitSync(); err != nil {
		return blob.UploadState{}, err
	}
	if err := w.f.Sync(); err != nil {
		w.err = fmt.Errorf("upload %s: sync: %w", w.id, err)
		return blob.UploadState{}, w.err
	}
	if !w.named {
		// Without this a crash can lose the new file's name, and with it
		// the acknowledged data (found by blob/fs's crash test).
		if err := w.s.fs.SyncDir(w.s.uploadsDir()); err != nil {
			w.err = fmt.Errorf("upload %s: sync %s: %w", w.id, w.s.uploadsDir(), err)
			return blob.UploadState{}, w.err
		}
		w.named = true
	}
	w.ahead = w.size // synced: the next background sync is syncAhead on
	b, err := w.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return blob.UploadState{}, fmt.Errorf("upload %s: %w", w.id, err)
	}
	return blob.UploadState{Size: w.size, Data: b}, nil
}

// Close implements blob.Writer. It keeps the upload's data. Closing a
// closed writer is a no-op.
func (w *writer) Close() error {
	if w.f == nil {
		return nil
	}
	// The file is kept; a failed background sync is not reported here but
	// cannot lose acknowledged data: a resumed upload starts from the last
	// State, whose own sync succeeded, and cuts the file back to it.
	_ = w.waitSync()
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("upload %s: %w", w.id, err)
	}
	return nil
}

// Commit implements blob.Writer, in containerd's order: sync the upload
// file, check size and digest, and unless the blob already exists, rename
// the file into place and sync the directory that received it (and that
// directory's parent if the directory is new).
//
// A failure before the rename leaves nothing visible. A failure to sync the
// directory after the rename is reported, though the blob is then visible;
// a later commit of the same digest finds it and succeeds.
func (w *writer) Commit(ctx context.Context, expected digest.Digest, size int64) (blob.Info, error) {
	if w.f == nil {
		return blob.Info{}, fmt.Errorf("upload %s: %w", w.id, errClosed)
	}
	_ = w.waitSync() // w.err, checked below
	f := w.f
	w.f = nil
	// From here on every path closes f exactly once.
	if err := blob.ValidateDigest(expected); err != nil {
		f.Close()
		return blob.Info{}, fmt.Errorf("upload %s: %w", w.id, err)
	}
	if w.err != nil {
		f.Close()
		return blob.Info{}, w.err
	}
	if err := ctx.Err(); err != nil {
		f.Close()
		return blob.Info{}, fmt.Errorf("upload %s: %w", w.id, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		w.err = fmt.Errorf("upload %s: sync: %w", w.id, err)
		return blob.Info{}, w.err
	}
	fi, err := f.Stat()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return blob.Info{}, fmt.Errorf("upload %s: %w", w.id, err)
	}
	if fi.Size() != w.size {
		// Someone else wrote to the file: not ours to remove.
		return blob.Info{}, fmt.Errorf("upload %s: file has %d bytes, writer wrote %d", w.id, fi.Size(), w.size)
	}

	if size >= 0 && size != w.size {
		w.discard(ctx)
		return blob.Info{}, fmt.Errorf("blob %s: upload %s has %d bytes, expected %d: %w",
			expected, w.id, w.size, size, blob.ErrSizeInvalid)
	}
	got, err := w.digest(ctx, expected.Algorithm())
	if err != nil {
		return blob.Info{}, err
	}
	if got != expected {
		w.discard(ctx)
		return blob.Info{}, fmt.Errorf("blob %s: upload %s hashes to %s: %w",
			expected, w.id, got, blob.ErrDigestMismatch)
	}

	target := w.s.blobPath(expected)
	if tfi, err := os.Stat(target); err == nil && tfi.Size() != w.size {
		// The stored file is damaged (its size is not that of the bytes
		// that hash to its name, which this upload just verified): the
		// rename below replaces it, so a re-push heals a corrupt blob.
		w.s.logger.Warn("replacing a damaged blob file with a verified upload", "digest", expected,
			"stored_bytes", tfi.Size(), "verified_bytes", w.size)
	} else if err == nil {
		// Dedup: the bytes are already there, perhaps as garbage that gc
		// has not reached yet. Refresh the file's time so that gc's grace
		// period (which it reads from the file for blobs without a row)
		// runs from this commit, not from the first. The time need not be
		// durable: it only matters until the caller links the blob, and a
		// crash before that means the push was not acknowledged.
		// If gc removed it between the Stat and now, this upload's own
		// bytes (still in place) are committed below instead.
		t := time.Now()
		err := w.s.fs.Chtimes(target, t, t)
		if err == nil {
			// The existing file may be there only because an earlier
			// commit renamed it and then failed to sync the directory
			// (or, with a new directory, its parent): make its entry
			// durable before acknowledging it again.
			if err := w.s.fs.SyncDir(filepath.Dir(target)); err != nil {
				return blob.Info{}, fmt.Errorf("blob %s: sync %s: %w", expected, filepath.Dir(target), err)
			}
			if err := w.s.nameDurable(filepath.Dir(target)); err != nil {
				return blob.Info{}, fmt.Errorf("blob %s: %w", expected, err)
			}
			w.discard(ctx)
			return blob.Info{Digest: expected, Size: tfi.Size(), ModTime: t}, nil
		}
		if !errors.Is(err, iofs.ErrNotExist) {
			return blob.Info{}, fmt.Errorf("blob %s: refresh time: %w", expected, err)
		}
	} else if !errors.Is(err, iofs.ErrNotExist) {
		return blob.Info{}, fmt.Errorf("blob %s: %w", expected, err)
	}

	dir := filepath.Dir(target)
	if _, err := os.Stat(dir); errors.Is(err, iofs.ErrNotExist) {
		// Berth never removes a prefix directory, but should one go
		// (removed by hand while serving), the one made here is new:
		// its entry is synced below whatever was known of the old one.
		w.s.named.Delete(dir)
		if err := w.s.fs.MkdirAll(dir, dirPerm); err != nil {
			return blob.Info{}, fmt.Errorf("blob %s: %w", expected, err)
		}
	} else if err != nil {
		return blob.Info{}, fmt.Errorf("blob %s: %w", expected, err)
	}
	if err := w.s.fs.Rename(w.path, target); err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			// The upload's data went away (expired) under the writer.
			return blob.Info{}, fmt.Errorf("blob %s: upload %s data is gone: %w", expected, w.id, blob.ErrNotFound)
		}
		return blob.Info{}, fmt.Errorf("blob %s: commit upload %s: %w", expected, w.id, err)
	}
	// Sync the prefix directory, then its parent unless the prefix
	// directory's entry there is known durable (nameDurable): the prefix
	// directory may be new, made by this commit or by another that has
	// not synced its entry yet (it saw no directory and made it; this one
	// found it), and this commit must not be acknowledged before that
	// entry is durable. A sync of an unchanged directory still flushes
	// the disk's cache, so it is skipped once the entry is known durable.
	if err := w.s.fs.SyncDir(dir); err != nil {
		return blob.Info{}, fmt.Errorf("blob %s: sync %s: %w", expected, dir, err)
	}
	if err := w.s.nameDurable(dir); err != nil {
		return blob.Info{}, fmt.Errorf("blob %s: %w", expected, err)
	}
	return blob.Info{Digest: expected, Size: w.size, ModTime: fi.ModTime()}, nil
}

// digest returns the digest of the upload's bytes under alg. sha256 comes
// from the running hash; sha512 re-reads the file.
func (w *writer) digest(ctx context.Context, alg digest.Algorithm) (digest.Digest, error) {
	if alg == blob.SHA256 {
		return digest.NewDigest(alg, w.h), nil
	}
	f, err := w.s.fs.OpenFile(w.path, os.O_RDONLY, 0)
	if errors.Is(err, iofs.ErrNotExist) {
		// The upload's data went away (expired) under the writer, as at
		// the rename below for sha256.
		return "", fmt.Errorf("upload %s data is gone: %w", w.id, blob.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("upload %s: %w", w.id, err)
	}
	defer f.Close()
	h := sha512.New()
	n, err := copyCtx(ctx, h, f)
	if err != nil {
		return "", fmt.Errorf("upload %s: hash: %w", w.id, err)
	}
	if n != w.size {
		return "", fmt.Errorf("upload %s: read %d bytes back, wrote %d", w.id, n, w.size)
	}
	return digest.NewDigest(alg, h), nil
}

// discard removes the upload's data after a failed or redundant commit.
// A failure is logged: the data is then an orphan for upload expiry.
func (w *writer) discard(ctx context.Context) {
	if err := w.s.fs.Remove(w.path); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		w.s.logger.WarnContext(ctx, "blob store: removing upload data", "upload", w.id, "err", err)
	}
}

// copyCtx is io.Copy that stops between reads when ctx ends.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, err := src.Read(buf)
		if m > 0 {
			if _, werr := dst.Write(buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

package faults

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
)

// Blobs wraps a blob store so that in decides which of its calls fail.
// Open returns the inner store's reader unchanged (an *os.File on blob/fs).
func Blobs(s blob.Store, in *Injector) blob.Store { return &blobs{s: s, in: in} }

type blobs struct {
	s  blob.Store
	in *Injector
}

func (b *blobs) Stat(ctx context.Context, d digest.Digest) (blob.Info, error) {
	if err := b.in.fail("blob.Stat"); err != nil {
		return blob.Info{}, err
	}
	return b.s.Stat(ctx, d)
}

func (b *blobs) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, error) {
	if err := b.in.fail("blob.Open"); err != nil {
		return nil, err
	}
	return b.s.Open(ctx, d)
}

func (b *blobs) Upload(ctx context.Context, id string, st blob.UploadState) (blob.Writer, error) {
	if err := b.in.fail("blob.Upload"); err != nil {
		return nil, err
	}
	w, err := b.s.Upload(ctx, id, st)
	if err != nil {
		return nil, err
	}
	return &writer{w: w, in: b.in, id: id}, nil
}

func (b *blobs) AbortUpload(ctx context.Context, id string) error {
	if err := b.in.fail("blob.AbortUpload"); err != nil {
		return err
	}
	return b.s.AbortUpload(ctx, id)
}

func (b *blobs) Delete(ctx context.Context, d digest.Digest) error {
	if err := b.in.fail("blob.Delete"); err != nil {
		return err
	}
	return b.s.Delete(ctx, d)
}

func (b *blobs) Walk(ctx context.Context, fn func(blob.Info) error) error {
	if err := b.in.fail("blob.Walk"); err != nil {
		return err
	}
	return b.s.Walk(ctx, fn)
}

func (b *blobs) WalkUploads(ctx context.Context, fn func(string, time.Time) error) error {
	if err := b.in.fail("blob.WalkUploads"); err != nil {
		return err
	}
	return b.s.WalkUploads(ctx, fn)
}

// writer injects into one upload's writes, states and commit.
type writer struct {
	w  blob.Writer
	in *Injector
	id string
}

// Write fails as the injector says: a torn write writes half of p first;
// a full disk writes what fits, then fails with ENOSPC (as *os.PathError,
// as the operating system reports it).
func (w *writer) Write(p []byte) (int, error) {
	if r := w.in.check("blob.Write"); r != nil {
		n := 0
		if r.torn {
			n, _ = w.w.Write(p[:len(p)/2])
		}
		return n, &os.PathError{Op: "write", Path: "uploads/" + w.id, Err: r.err}
	}
	fit, ok := w.in.room(len(p))
	n, err := w.w.Write(p[:fit])
	if err != nil {
		return n, err
	}
	if !ok {
		return n, &os.PathError{Op: "write", Path: "uploads/" + w.id, Err: syscall.ENOSPC}
	}
	return n, nil
}

func (w *writer) State() (blob.UploadState, error) {
	if err := w.in.fail("blob.State"); err != nil {
		return blob.UploadState{}, err
	}
	return w.w.State()
}

// Commit closes the inner writer when it fails, as blob.Writer promises.
func (w *writer) Commit(ctx context.Context, expected digest.Digest, size int64) (blob.Info, error) {
	if err := w.in.fail("blob.Commit"); err != nil {
		w.w.Close()
		return blob.Info{}, fmt.Errorf("blob %s: %w", expected, err)
	}
	return w.w.Commit(ctx, expected, size)
}

func (w *writer) Close() error { return w.w.Close() }

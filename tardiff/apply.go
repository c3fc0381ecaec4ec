package tardiff

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Header starts every delta.
var Header = []byte("tardf1\n\x00")

// The operations.
const (
	opData    = 0
	opOpen    = 1
	opCopy    = 2
	opAddData = 3
	opSeek    = 4
)

// Limits of the applier.
const (
	// maxPath bounds an Open op's path.
	maxPath = 4096
	// maxWindow bounds the zstd window a delta may use (its decoder's
	// memory).
	maxWindow = 32 << 20
	// chunk is the applier's buffer size.
	chunk = 64 << 10
)

// ErrInvalid wraps every error about a malformed delta.
var ErrInvalid = errors.New("invalid tar-diff")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Source gives the applier the old tree's regular files by the clean path
// a delta names.
type Source interface {
	// Open returns the file's contents; an error if there is none.
	Open(path string) (io.ReadSeekCloser, error)
}

// CleanPath makes a tar name relative and lexically clean, as the format
// names files; "" if nothing is left (the name of the root).
func CleanPath(name string) string {
	return path.Clean("/" + name)[1:]
}

// Apply writes to out the tar that delta rebuilds from src.
func Apply(ctx context.Context, delta io.Reader, src Source, out io.Writer) error {
	head := make([]byte, len(Header))
	if _, err := io.ReadFull(delta, head); err != nil {
		return invalid("reading the header: %v", err)
	}
	if !bytes.Equal(head, Header) {
		return invalid("header %q is not %q", head, Header)
	}
	dec, err := zstd.NewReader(delta, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(maxWindow))
	if err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	defer dec.Close()
	r := bufio.NewReaderSize(dec, chunk)
	a := applier{src: src, out: ctxWriter{ctx, out}, buf: make([]byte, chunk), add: make([]byte, chunk)}
	defer a.closeFile()
	for n := 0; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		op, err := r.ReadByte()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return zstdErr(err)
		}
		size, err := binary.ReadUvarint(r)
		if err != nil {
			return zstdErr(fmt.Errorf("op %d: size: %w", op, unexpected(err)))
		}
		if size > 1<<62 {
			return invalid("op %d: size %d", op, size)
		}
		if err := a.do(r, op, int64(size)); err != nil {
			return err
		}
	}
}

// zstdErr marks a decoding error as a malformed delta.
func zstdErr(err error) error {
	if errors.Is(err, ErrInvalid) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrInvalid, err)
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

type applier struct {
	src      Source
	out      io.Writer
	file     io.ReadSeekCloser
	pos, end int64 // the source position and the file's size
	buf, add []byte
}

func (a *applier) closeFile() {
	if a.file != nil {
		a.file.Close()
		a.file = nil
	}
}

func (a *applier) do(r *bufio.Reader, op byte, size int64) error {
	switch op {
	case opData:
		n, err := io.CopyBuffer(a.out, io.LimitReader(r, size), a.buf)
		if err != nil {
			return zstdErr(err)
		}
		if n != size {
			return invalid("data: the stream ends after %d of %d bytes", n, size)
		}
		return nil
	case opOpen:
		if size == 0 || size > maxPath {
			return invalid("open: path of %d bytes", size)
		}
		name := make([]byte, size)
		if _, err := io.ReadFull(r, name); err != nil {
			return zstdErr(fmt.Errorf("open: %w", unexpected(err)))
		}
		p := string(name)
		if strings.IndexByte(p, 0) >= 0 {
			return invalid("open: path %q holds a NUL", p)
		}
		clean := CleanPath(p)
		if clean == "" || clean != p {
			// Absolute, or with . or .. elements: tar-diff never
			// writes one.
			return invalid("open: path %q is not clean", p)
		}
		a.closeFile()
		f, err := a.src.Open(clean)
		if err != nil {
			return fmt.Errorf("open %q in the old tree: %w", clean, err)
		}
		end, err := f.Seek(0, io.SeekEnd)
		if err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("open %q in the old tree: %w", clean, err)
		}
		a.file, a.pos, a.end = f, 0, end
		return nil
	case opCopy:
		if err := a.need(size, "copy"); err != nil {
			return err
		}
		n, err := io.CopyBuffer(a.out, io.LimitReader(a.file, size), a.buf)
		if err != nil {
			return fmt.Errorf("copy from the old tree: %w", err)
		}
		if n != size {
			return fmt.Errorf("copy from the old tree: %d of %d bytes", n, size)
		}
		a.pos += size
		return nil
	case opAddData:
		if err := a.need(size, "add"); err != nil {
			return err
		}
		for left := size; left > 0; {
			n := min(left, int64(len(a.add)))
			if _, err := io.ReadFull(r, a.add[:n]); err != nil {
				return zstdErr(fmt.Errorf("add: %w", unexpected(err)))
			}
			if _, err := io.ReadFull(a.file, a.buf[:n]); err != nil {
				return fmt.Errorf("add: reading the old tree: %w", err)
			}
			for i := range n {
				a.add[i] += a.buf[i]
			}
			if _, err := a.out.Write(a.add[:n]); err != nil {
				return err
			}
			left -= n
		}
		a.pos += size
		return nil
	case opSeek:
		if a.file == nil {
			return invalid("seek with no file open")
		}
		if size > a.end {
			return invalid("seek to %d in a file of %d bytes", size, a.end)
		}
		if _, err := a.file.Seek(size, io.SeekStart); err != nil {
			return fmt.Errorf("seek in the old tree: %w", err)
		}
		a.pos = size
		return nil
	default:
		return invalid("unknown op %d", op)
	}
}

// need checks that size bytes can be read from the open file.
func (a *applier) need(size int64, what string) error {
	if a.file == nil {
		return invalid("%s with no file open", what)
	}
	if size > a.end-a.pos {
		return invalid("%s of %d bytes at %d in a file of %d bytes", what, size, a.pos, a.end)
	}
	return nil
}

// SpooledSource is a Source of the regular files of a tar, spooled to one
// temporary file. Close removes it.
type SpooledSource struct {
	f     *os.File
	files map[string]span
}

type span struct{ off, size int64 }

// Open implements Source.
func (s *SpooledSource) Open(p string) (io.ReadSeekCloser, error) {
	sp, ok := s.files[p]
	if !ok {
		return nil, fmt.Errorf("no regular file %q in the old tree: %w", p, os.ErrNotExist)
	}
	return nopCloser{io.NewSectionReader(s.f, sp.off, sp.size)}, nil
}

// Close removes the spooled data.
func (s *SpooledSource) Close() error {
	err := s.f.Close()
	if rmErr := os.Remove(s.f.Name()); err == nil {
		err = rmErr
	}
	return err
}

type nopCloser struct{ *io.SectionReader }

func (nopCloser) Close() error { return nil }

// TarSource spools the regular files of the uncompressed tar old to a
// temporary file in tempDir ("" for the default) and indexes them by clean
// path; a later entry of a path replaces an earlier one, as extracting
// the tar would.
func TarSource(ctx context.Context, old io.Reader, tempDir string) (*SpooledSource, error) {
	f, err := os.CreateTemp(tempDir, "tardiff-src-")
	if err != nil {
		return nil, fmt.Errorf("tardiff: %w", err)
	}
	s := &SpooledSource{f: f, files: make(map[string]span)}
	if err := s.fill(ctx, old); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *SpooledSource) fill(ctx context.Context, old io.Reader) error {
	tr := tar.NewReader(old)
	w := bufio.NewWriterSize(s.f, 1<<20)
	var (
		off       int64
		entries   int
		pathBytes int64
	)
	buf := make([]byte, chunk)
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("tardiff: old tar: %w", err)
		}
		entries++
		pathBytes += int64(len(hdr.Name))
		if entries > DefaultMaxEntries || pathBytes > DefaultMaxPathBytes {
			return fmt.Errorf("tardiff: old tar: more than %d entries or %d bytes of paths: %w", DefaultMaxEntries, DefaultMaxPathBytes, ErrTooLarge)
		}
		p := CleanPath(hdr.Name)
		delete(s.files, p)
		if p == "" || hdr.Typeflag != tar.TypeReg || isSparse(hdr) {
			continue
		}
		n, err := io.CopyBuffer(w, tr, buf)
		if err != nil {
			return fmt.Errorf("tardiff: old tar: %s: %w", p, err)
		}
		s.files[p] = span{off: off, size: n}
		off += n
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("tardiff: spool: %w", err)
	}
	return nil
}

// isSparse reports a sparse file, whose tar contents are not its bytes.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	return hdr.PAXRecords["GNU.sparse.major"] != "" || hdr.PAXRecords["GNU.sparse.minor"] != "" ||
		hdr.PAXRecords["GNU.sparse.map"] != ""
}

// ctxWriter stops a long operation when ctx ends (it is checked at every
// buffer written).
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

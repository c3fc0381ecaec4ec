package tardiff

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

// Defaults of Options.
const (
	DefaultMaxDiffFileSize = 64 << 20
	DefaultMaxMemory       = 64 << 20
)

// Options bound the generator.
type Options struct {
	// TempDir holds the spooled file contents ("" = os.TempDir()); they
	// are removed when Diff returns.
	TempDir string
	// MaxDiffFileSize: a changed file larger than this (old or new) is
	// sent whole rather than diffed.
	MaxDiffFileSize int64
	// MaxMemory bounds the block index of the file being diffed: the
	// block size grows with the old file so the index fits.
	MaxMemory int64
	// MaxEntries and MaxPathBytes bound the old tree's index (entries, and
	// the bytes of their paths, which a tar's PAX records let be 1 MiB
	// each); past them Diff fails with ErrTooLarge.
	MaxEntries   int
	MaxPathBytes int64
}

// ErrTooLarge: an input passes one of Options' bounds.
var ErrTooLarge = errors.New("tar-diff input over the limits")

// Defaults of the old tree's bounds.
const (
	DefaultMaxEntries   = 1_000_000
	DefaultMaxPathBytes = 64 << 20
)

// Stats describe a delta.
type Stats struct {
	OldBytes, NewBytes   int64 // the two tars
	DeltaBytes           int64 // the delta written
	CopiedBytes          int64 // new bytes taken from the old tree
	LiteralBytes         int64 // new bytes sent as data (before compression)
	FilesReused          int   // files copied whole from the old tree
	FilesDiffed          int   // files diffed against their old version
	FilesLiteral         int   // files sent whole
	BlockSize            int   // the largest block size a diff used
	FalseHits            int64 // checksum hits that were not matches (bounded per file)
	OldFiles, NewEntries int
}

// literalChunk is the largest Data op the generator writes.
const literalChunk = 1 << 20

// bytesPerIndexEntry is what one block of the index costs in a Go map
// (key, value, overhead), for choosing the block size.
const bytesPerIndexEntry = 48

// minBlock is the smallest block the diff matches.
const minBlock = 64

// Diff writes to out a delta that turns the uncompressed tar old into the
// uncompressed tar new (see the package documentation). old and new are
// each read once, to their end.
func Diff(ctx context.Context, old, new io.Reader, out io.Writer, opt Options) (Stats, error) {
	if opt.MaxDiffFileSize <= 0 {
		opt.MaxDiffFileSize = DefaultMaxDiffFileSize
	}
	if opt.MaxMemory <= 0 {
		opt.MaxMemory = DefaultMaxMemory
	}
	if opt.MaxEntries <= 0 {
		opt.MaxEntries = DefaultMaxEntries
	}
	if opt.MaxPathBytes <= 0 {
		opt.MaxPathBytes = DefaultMaxPathBytes
	}
	var st Stats
	tree, err := readOld(ctx, old, opt, &st)
	if err != nil {
		return st, err
	}
	defer tree.Close()
	spool, err := os.CreateTemp(opt.TempDir, "tardiff-new-")
	if err != nil {
		return st, fmt.Errorf("tardiff: %w", err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()

	cw := &countWriter{w: out}
	if _, err := cw.Write(Header); err != nil {
		return st, err
	}
	enc, err := zstd.NewWriter(cw, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(8<<20),
		zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return st, fmt.Errorf("tardiff: zstd: %w", err)
	}
	g := &gen{ctx: ctx, opt: opt, tree: tree, spool: spool, st: &st,
		ops: &opWriter{enc: enc, lit: make([]byte, 0, literalChunk), st: &st}}
	if err := g.run(new); err != nil {
		enc.Close()
		return st, err
	}
	if err := g.ops.flush(); err != nil {
		return st, err
	}
	if err := enc.Close(); err != nil {
		return st, fmt.Errorf("tardiff: zstd: %w", err)
	}
	st.DeltaBytes = cw.n
	return st, nil
}

// oldTree is the old tar's regular files, spooled, with what the
// generator may reference.
type oldTree struct {
	*SpooledSource
	// usable: files a delta may name (as containers/tar-diff: regular,
	// not empty, not sparse, readable by others), with their sha256.
	usable map[string][32]byte
	bySum  map[[32]byte]string
}

func readOld(ctx context.Context, old io.Reader, opt Options, st *Stats) (*oldTree, error) {
	f, err := os.CreateTemp(opt.TempDir, "tardiff-old-")
	if err != nil {
		return nil, fmt.Errorf("tardiff: %w", err)
	}
	t := &oldTree{
		SpooledSource: &SpooledSource{f: f, files: make(map[string]span)},
		usable:        make(map[string][32]byte),
		bySum:         make(map[[32]byte]string),
	}
	cr := &countReader{r: old}
	tr := tar.NewReader(cr)
	w := bufio.NewWriterSize(f, 1<<20)
	buf := make([]byte, chunk)
	var (
		off       int64
		entries   int
		pathBytes int64
	)
	for {
		if ctx.Err() != nil {
			t.Close()
			return nil, ctx.Err()
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("tardiff: old tar: %w", err)
		}
		entries++
		pathBytes += int64(len(hdr.Name))
		if entries > opt.MaxEntries || pathBytes > opt.MaxPathBytes {
			t.Close()
			return nil, fmt.Errorf("tardiff: old tar: more than %d entries or %d bytes of paths: %w", opt.MaxEntries, opt.MaxPathBytes, ErrTooLarge)
		}
		p := CleanPath(hdr.Name)
		delete(t.files, p)
		delete(t.usable, p)
		if p == "" || hdr.Typeflag != tar.TypeReg || isSparse(hdr) {
			continue
		}
		h := sha256.New()
		n, err := io.CopyBuffer(io.MultiWriter(w, h), tr, buf)
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("tardiff: old tar: %s: %w", p, err)
		}
		t.files[p] = span{off: off, size: n}
		off += n
		if n > 0 && hdr.Mode&0o004 != 0 {
			var sum [32]byte
			h.Sum(sum[:0])
			t.usable[p] = sum
		}
	}
	// Drain the old tar (its record padding) so OldBytes is its size.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		t.Close()
		return nil, fmt.Errorf("tardiff: old tar: %w", err)
	}
	if err := w.Flush(); err != nil {
		t.Close()
		return nil, fmt.Errorf("tardiff: spool: %w", err)
	}
	for p, sum := range t.usable {
		// The smallest path of a content, so the delta does not depend
		// on map order.
		if q, ok := t.bySum[sum]; !ok || p < q {
			t.bySum[sum] = p
		}
	}
	st.OldBytes, st.OldFiles = cr.n, len(t.usable)
	return t, nil
}

// gen streams the new tar into ops.
type gen struct {
	ctx   context.Context
	opt   Options
	tree  *oldTree
	spool *os.File
	st    *Stats
	ops   *opWriter
}

func (g *gen) run(new io.Reader) error {
	rec := &recorder{r: new, ops: g.ops, on: true}
	tr := tar.NewReader(rec)
	for {
		if g.ctx.Err() != nil {
			return g.ctx.Err()
		}
		rec.on = true // headers and the previous entry's padding
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("tardiff: new tar: %w", err)
		}
		if rec.err != nil {
			return rec.err
		}
		g.st.NewEntries++
		p := CleanPath(hdr.Name)
		if hdr.Typeflag != tar.TypeReg || isSparse(hdr) || hdr.Size == 0 || p == "" {
			// The raw contents (a sparse file's included) as data.
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return fmt.Errorf("tardiff: new tar: %s: %w", p, err)
			}
			if rec.err != nil {
				return rec.err
			}
			continue
		}
		rec.on = false
		if err := g.file(p, tr, hdr.Size); err != nil {
			return err
		}
	}
	// The end blocks were recorded by the last Next; the record padding
	// after them too.
	rec.on = true
	if _, err := io.Copy(io.Discard, rec); err != nil {
		return fmt.Errorf("tardiff: new tar: %w", err)
	}
	if rec.err != nil {
		return rec.err
	}
	g.st.NewBytes = rec.n
	return nil
}

// file spools one regular file of the new tar and writes its ops.
func (g *gen) file(p string, r io.Reader, size int64) error {
	if _, err := g.spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("tardiff: spool: %w", err)
	}
	if err := g.spool.Truncate(0); err != nil {
		return fmt.Errorf("tardiff: spool: %w", err)
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(g.spool, h), r, make([]byte, chunk))
	if err != nil {
		return fmt.Errorf("tardiff: new tar: %s: %w", p, err)
	}
	if n != size {
		return fmt.Errorf("tardiff: new tar: %s: %d of %d bytes", p, n, size)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	if old, ok := g.tree.usable[p]; ok && old == sum {
		return g.reuse(p, n)
	}
	if q, ok := g.tree.bySum[sum]; ok {
		return g.reuse(q, n)
	}
	if _, ok := g.tree.usable[p]; ok {
		old := g.tree.files[p]
		if old.size <= g.opt.MaxDiffFileSize && n <= g.opt.MaxDiffFileSize {
			g.st.FilesDiffed++
			return g.diff(p, old, n)
		}
	}
	g.st.FilesLiteral++
	return g.literal(0, n)
}

// reuse copies a whole old file.
func (g *gen) reuse(p string, n int64) error {
	g.st.FilesReused++
	if err := g.ops.open(p); err != nil {
		return err
	}
	return g.ops.copy(n)
}

// literal sends bytes [from, to) of the spooled new file as data.
func (g *gen) literal(from, to int64) error {
	if to <= from {
		return nil
	}
	_, err := io.CopyBuffer(g.ops, io.NewSectionReader(g.spool, from, to-from), make([]byte, chunk))
	return err
}

// diff matches the spooled new file (n bytes) against the old file at p.
func (g *gen) diff(p string, old span, n int64) error {
	oldR := io.NewSectionReader(g.tree.f, old.off, old.size)
	block := int64(minBlock)
	if entries := g.opt.MaxMemory / bytesPerIndexEntry; old.size/block > entries {
		block = (old.size + entries - 1) / entries
	}
	g.st.BlockSize = max(g.st.BlockSize, int(block))
	if n < block || old.size < block {
		return g.literal(0, n)
	}
	// Index the old file's blocks by rolling checksum (the first block
	// with a checksum wins).
	idx := make(map[uint32]int64, old.size/block)
	br := bufio.NewReaderSize(oldR, 1<<20)
	blk := make([]byte, block)
	for off := int64(0); off+block <= old.size; off += block {
		if _, err := io.ReadFull(br, blk); err != nil {
			return fmt.Errorf("tardiff: old %s: %w", p, err)
		}
		if _, ok := idx[checksum(blk)]; !ok {
			idx[checksum(blk)] = off
		}
		if off%(64<<20) == 0 && g.ctx.Err() != nil {
			return g.ctx.Err()
		}
	}
	opened := false
	var srcPos int64
	out := &window{r: g.spool, size: n} // the byte leaving the rolling sum
	in := &window{r: g.spool, size: n}  // the byte entering it
	oldBuf, newBuf := make([]byte, chunk), make([]byte, chunk)
	var a, b uint32
	reset := func(i int64) {
		a, b = 0, 0
		for k := int64(0); k < block; k++ {
			x := uint32(in.at(i + k))
			a += x
			b += uint32(block-k) * x
		}
	}
	litStart, i := int64(0), int64(0)
	// Weak-checksum hits that are not matches cost two reads each; past
	// this many the rest of the file is data (bounded work whatever the
	// input).
	var falseHits int64
	maxFalseHits := max(4096, n/block)
	reset(0)
	for i+block <= n {
		if i%(16<<20) == 0 && g.ctx.Err() != nil {
			return g.ctx.Err()
		}
		if in.err != nil || out.err != nil {
			return fmt.Errorf("tardiff: spool: %w", firstErr(in.err, out.err))
		}
		if off, ok := idx[(a&0xffff)|b<<16]; ok && falseHits <= maxFalseHits {
			// Compare one block first (crafted data can make the weak
			// checksum match almost everywhere); extend only a real match.
			l, err := matchLen(oldR, off, g.spool, i, min(old.size-off, n-i, block), oldBuf[:min(block, int64(len(oldBuf)))], newBuf[:min(block, int64(len(newBuf)))])
			if err == nil && l == block {
				var more int64
				more, err = matchLen(oldR, off+block, g.spool, i+block, min(old.size-off, n-i)-block, oldBuf, newBuf)
				l += more
			}
			if err != nil {
				return err
			}
			if l < block {
				falseHits++
				g.st.FalseHits++
			}
			if l >= block {
				if err := g.literal(litStart, i); err != nil {
					return err
				}
				if !opened {
					if err := g.ops.open(p); err != nil {
						return err
					}
					opened, srcPos = true, 0
				}
				if srcPos != off {
					if err := g.ops.seek(off); err != nil {
						return err
					}
				}
				if err := g.ops.copy(l); err != nil {
					return err
				}
				srcPos = off + l
				i += l
				litStart = i
				if i+block <= n {
					reset(i)
				}
				continue
			}
		}
		if i+block < n {
			xo, xi := uint32(out.at(i)), uint32(in.at(i+block))
			a += xi - xo
			b += a - uint32(block)*xo
		}
		i++
	}
	return g.literal(litStart, n)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checksum is the rolling checksum of a block (rsync's: the byte sum and
// the position-weighted sum, 16 bits each).
func checksum(p []byte) uint32 {
	var a, b uint32
	n := uint32(len(p))
	for k, x := range p {
		a += uint32(x)
		b += (n - uint32(k)) * uint32(x)
	}
	return (a & 0xffff) | b<<16
}

// matchLen returns how many bytes from old at oldOff equal the new file
// at newOff, comparing at most limit.
func matchLen(old io.ReaderAt, oldOff int64, new io.ReaderAt, newOff, limit int64, ob, nb []byte) (int64, error) {
	var l int64
	for l < limit {
		k := min(int64(len(ob)), limit-l)
		if _, err := old.ReadAt(ob[:k], oldOff+l); err != nil && err != io.EOF {
			return 0, fmt.Errorf("tardiff: old file: %w", err)
		}
		if _, err := new.ReadAt(nb[:k], newOff+l); err != nil && err != io.EOF {
			return 0, fmt.Errorf("tardiff: spool: %w", err)
		}
		for j := int64(0); j < k; j++ {
			if ob[j] != nb[j] {
				return l + j, nil
			}
		}
		l += k
	}
	return l, nil
}

// window reads single bytes of a file sequentially through a buffer.
type window struct {
	r    io.ReaderAt
	size int64
	base int64
	buf  []byte
	err  error
}

func (w *window) at(i int64) byte {
	if i < w.base || i >= w.base+int64(len(w.buf)) {
		if w.buf == nil {
			w.buf = make([]byte, 0, 1<<20)
		}
		w.base = i
		k := min(int64(cap(w.buf)), w.size-i)
		w.buf = w.buf[:k]
		if _, err := w.r.ReadAt(w.buf, i); err != nil && err != io.EOF {
			w.err = err
		}
	}
	return w.buf[i-w.base]
}

// opWriter encodes ops into the zstd stream; data is gathered into Data
// ops of up to literalChunk bytes.
type opWriter struct {
	enc *zstd.Encoder
	lit []byte
	st  *Stats
	hdr [1 + binary.MaxVarintLen64]byte
}

// Write adds literal bytes.
func (w *opWriter) Write(p []byte) (int, error) {
	n := len(p)
	w.st.LiteralBytes += int64(n)
	for len(p) > 0 {
		k := min(len(p), cap(w.lit)-len(w.lit))
		w.lit = append(w.lit, p[:k]...)
		p = p[k:]
		if len(w.lit) == cap(w.lit) {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *opWriter) flush() error {
	if len(w.lit) == 0 {
		return nil
	}
	err := w.op(opData, uint64(len(w.lit)), w.lit)
	w.lit = w.lit[:0]
	return err
}

func (w *opWriter) op(op byte, size uint64, data []byte) error {
	w.hdr[0] = op
	k := binary.PutUvarint(w.hdr[1:], size)
	if _, err := w.enc.Write(w.hdr[:1+k]); err != nil {
		return fmt.Errorf("tardiff: zstd: %w", err)
	}
	if data != nil {
		if _, err := w.enc.Write(data); err != nil {
			return fmt.Errorf("tardiff: zstd: %w", err)
		}
	}
	return nil
}

func (w *opWriter) open(p string) error {
	if err := w.flush(); err != nil {
		return err
	}
	return w.op(opOpen, uint64(len(p)), []byte(p))
}

func (w *opWriter) copy(n int64) error {
	if err := w.flush(); err != nil {
		return err
	}
	w.st.CopiedBytes += n
	return w.op(opCopy, uint64(n), nil)
}

func (w *opWriter) seek(off int64) error {
	if err := w.flush(); err != nil {
		return err
	}
	return w.op(opSeek, uint64(off), nil)
}

// recorder passes the new tar through, sending what it reads to the ops
// as literal data while on.
type recorder struct {
	r   io.Reader
	ops *opWriter
	on  bool
	n   int64
	err error // an error writing the ops
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	if r.on && n > 0 && r.err == nil {
		if _, werr := r.ops.Write(p[:n]); werr != nil {
			r.err = werr
		}
	}
	return n, err
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

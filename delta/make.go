package delta

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/oci"
	"github.com/berth-dev/berth/tardiff"
)

// maxConfigBytes bounds the image config read for its DiffIDs.
const maxConfigBytes = oci.MaxConfigBytes

// image is what making a delta needs of one image: its last layer and
// that layer's DiffID.
type image struct {
	layer  v1.Descriptor
	diffID digest.Digest
}

// errNotDiffable: the image has no layer a delta can be made for; the
// pair is rejected (not an error of the stores).
var errNotDiffable = errors.New("not diffable")

// loadImage reads the manifest and config of repo@d.
func (m *Manager) loadImage(ctx context.Context, repo string, d digest.Digest) (image, error) {
	mf, err := m.store.GetManifest(ctx, repo, d)
	if errors.Is(err, meta.ErrManifestNotFound) {
		// Deleted meanwhile: the next cycle drops the pair.
		return image{}, fmt.Errorf("manifest %s@%s is gone: %w", repo, d, errNotDiffable)
	}
	if err != nil {
		return image{}, fmt.Errorf("manifest %s@%s: %w", repo, d, err)
	}
	pm, err := oci.ParseManifest(mf.MediaType, mf.Content)
	if err != nil {
		return image{}, fmt.Errorf("manifest %s@%s: %v: %w", repo, d, err, errNotDiffable)
	}
	if pm.Config == nil || len(pm.Layers) == 0 {
		return image{}, fmt.Errorf("manifest %s@%s has no layer: %w", repo, d, errNotDiffable)
	}
	if pm.Config.Size > maxConfigBytes {
		return image{}, fmt.Errorf("config of %s@%s is over %d bytes: %w", repo, d, maxConfigBytes, errNotDiffable)
	}
	f, err := m.blobs.Open(ctx, pm.Config.Digest)
	if errors.Is(err, blob.ErrNotFound) {
		return image{}, fmt.Errorf("config of %s@%s is not stored: %w", repo, d, errNotDiffable)
	}
	if err != nil {
		return image{}, fmt.Errorf("config of %s@%s: %w", repo, d, err)
	}
	defer f.Close()
	var cfg struct {
		RootFS struct {
			DiffIDs []digest.Digest `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.NewDecoder(io.LimitReader(f, maxConfigBytes)).Decode(&cfg); err != nil {
		return image{}, fmt.Errorf("config of %s@%s: %v: %w", repo, d, err, errNotDiffable)
	}
	ids := cfg.RootFS.DiffIDs
	if len(ids) != len(pm.Layers) {
		return image{}, fmt.Errorf("%s@%s: %d layers but %d DiffIDs: %w", repo, d, len(pm.Layers), len(ids), errNotDiffable)
	}
	last := len(ids) - 1
	if err := ids[last].Validate(); err != nil || ids[last].Algorithm() != digest.SHA256 {
		return image{}, fmt.Errorf("%s@%s: DiffID %q: %w", repo, d, ids[last], errNotDiffable)
	}
	return image{layer: pm.Layers[last], diffID: ids[last]}, nil
}

// make makes, verifies and stores the delta of p. A delta that cannot be
// made or is not worth it is a result (rejected, failed); an error is a
// problem of the stores, and the pair is tried again.
func (m *Manager) make(ctx context.Context, p *meta.DeltaPair) (meta.DeltaResult, error) {
	src, err := m.loadImage(ctx, p.Repo, p.Source)
	if errors.Is(err, errNotDiffable) {
		return meta.DeltaResult{State: meta.DeltaRejected, Detail: "source: " + err.Error()}, nil
	}
	if err != nil {
		return meta.DeltaResult{}, err
	}
	dst, err := m.loadImage(ctx, p.Repo, p.Target)
	if errors.Is(err, errNotDiffable) {
		return meta.DeltaResult{State: meta.DeltaRejected, Detail: "target: " + err.Error()}, nil
	}
	if err != nil {
		return meta.DeltaResult{}, err
	}
	res := meta.DeltaResult{From: src.diffID, To: dst.diffID, LayerSize: dst.layer.Size}
	reject := func(format string, args ...any) (meta.DeltaResult, error) {
		res.State, res.Detail = meta.DeltaRejected, fmt.Sprintf(format, args...)
		return res, nil
	}
	fail := func(format string, args ...any) (meta.DeltaResult, error) {
		res.State, res.Detail = meta.DeltaFailed, fmt.Sprintf(format, args...)
		return res, nil
	}
	for _, l := range []v1.Descriptor{src.layer, dst.layer} {
		if _, err := m.blobs.Stat(ctx, l.Digest); errors.Is(err, blob.ErrNotFound) {
			// A sparse manifest's layer that was never pushed.
			return reject("layer %s is not stored", l.Digest)
		} else if err != nil {
			return meta.DeltaResult{}, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
	}
	switch {
	case src.diffID == dst.diffID:
		return reject("the layers are the same (DiffID %s)", dst.diffID)
	case src.layer.Size > m.opts.MaxLayerBytes || dst.layer.Size > m.opts.MaxLayerBytes:
		return reject("layer over the size limit of %d bytes", m.opts.MaxLayerBytes)
	case !decompressible(src.layer.MediaType) || !decompressible(dst.layer.MediaType):
		return reject("layer media type %q or %q is not a tar Berth can read", src.layer.MediaType, dst.layer.MediaType)
	}

	tmp, err := os.MkdirTemp(m.opts.TempDir, "delta-")
	if err != nil {
		return meta.DeltaResult{}, fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	out, err := os.CreateTemp(tmp, "delta")
	if err != nil {
		return meta.DeltaResult{}, fmt.Errorf("temporary file: %w", err)
	}
	defer out.Close()

	// Make the delta, checking on the way that both layers are what their
	// configs say.
	oldR, err := m.openLayer(ctx, src.layer)
	if err != nil {
		return meta.DeltaResult{}, err
	}
	defer oldR.Close()
	newR, err := m.openLayer(ctx, dst.layer)
	if err != nil {
		return meta.DeltaResult{}, err
	}
	defer newR.Close()
	dh := digest.SHA256.Digester()
	bw := bufio.NewWriterSize(io.MultiWriter(out, dh.Hash()), 1<<20)
	if err := m.diff(ctx, oldR, newR, bw); err != nil {
		if ctx.Err() != nil {
			return meta.DeltaResult{}, ctx.Err()
		}
		if errors.Is(err, errTarTooLarge) || errors.Is(err, tardiff.ErrTooLarge) {
			return reject("%v (limit %d bytes)", err, m.opts.MaxTarBytes)
		}
		if oldR.err() != nil || newR.err() != nil {
			return meta.DeltaResult{}, errors.Join(oldR.err(), newR.err())
		}
		return fail("making the delta: %v", err)
	}
	if err := bw.Flush(); err != nil {
		return meta.DeltaResult{}, fmt.Errorf("write delta: %w", err)
	}
	if err := errors.Join(oldR.drain(), newR.drain()); err != nil {
		return meta.DeltaResult{}, err
	}
	if got := oldR.diffID(); got != src.diffID {
		return fail("the source layer's tar hashes to %s, not its DiffID %s", got, src.diffID)
	}
	if got := newR.diffID(); got != dst.diffID {
		return fail("the target layer's tar hashes to %s, not its DiffID %s", got, dst.diffID)
	}
	size, err := out.Seek(0, io.SeekCurrent)
	if err != nil {
		return meta.DeltaResult{}, fmt.Errorf("delta size: %w", err)
	}
	if limit := int64(m.opts.MaxRatio * float64(dst.layer.Size)); size > limit {
		return reject("the delta (%d bytes) is not substantially smaller than the layer (%d bytes; at most %d)", size, dst.layer.Size, limit)
	}

	// Verify: the delta applied to the source layer must rebuild the
	// target layer byte for byte.
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return meta.DeltaResult{}, fmt.Errorf("rewind delta: %w", err)
	}
	if err := m.verify(ctx, src.layer, out, dst.diffID, tmp); err != nil {
		if ctx.Err() != nil {
			return meta.DeltaResult{}, ctx.Err()
		}
		var se storeError
		if errors.As(err, &se) {
			return meta.DeltaResult{}, err
		}
		return fail("verification: %v", err)
	}

	// Store the delta blob and link it into the repository.
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return meta.DeltaResult{}, fmt.Errorf("rewind delta: %w", err)
	}
	d := dh.Digest()
	if err := m.storeBlob(ctx, p.Repo, d, size, out); err != nil {
		return meta.DeltaResult{}, err
	}
	res.State, res.Blob, res.Size = meta.DeltaReady, d, size
	return res, nil
}

// diff runs the configured Differ, or the tar-diff generator.
func (m *Manager) diff(ctx context.Context, old, new io.Reader, out io.Writer) error {
	if m.opts.Differ != nil {
		return m.opts.Differ(ctx, old, new, out)
	}
	_, err := tardiff.Diff(ctx, old, new, out, tardiff.Options{
		TempDir:         m.opts.TempDir,
		MaxDiffFileSize: m.opts.MaxDiffFileSize,
		MaxMemory:       m.opts.MaxMemory,
	})
	return err
}

// storeError marks errors of the stores met during verification (they
// make the pair retried, not failed).
type storeError struct{ err error }

func (e storeError) Error() string { return e.err.Error() }
func (e storeError) Unwrap() error { return e.err }

// verify applies delta to the source layer and checks the result against
// want.
func (m *Manager) verify(ctx context.Context, srcLayer v1.Descriptor, delta io.Reader, want digest.Digest, tmp string) error {
	oldR, err := m.openLayer(ctx, srcLayer)
	if err != nil {
		return storeError{err}
	}
	defer oldR.Close()
	src, err := tardiff.TarSource(ctx, oldR, tmp)
	if err != nil {
		if oldR.err() != nil {
			return storeError{oldR.err()}
		}
		return fmt.Errorf("reading the source layer: %w", err)
	}
	defer src.Close()
	h := digest.SHA256.Digester()
	if err := tardiff.Apply(ctx, bufio.NewReaderSize(delta, 1<<20), src, h.Hash()); err != nil {
		return fmt.Errorf("applying the delta: %w", err)
	}
	if got := h.Digest(); got != want {
		return fmt.Errorf("the delta rebuilds a layer with DiffID %s, not %s", got, want)
	}
	return nil
}

// storeBlob commits the delta (size bytes of r, digest d) to the blob
// store and links it into repo.
func (m *Manager) storeBlob(ctx context.Context, repo string, d digest.Digest, size int64, r io.Reader) error {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	w, err := m.blobs.Upload(ctx, hex.EncodeToString(id), blob.UploadState{})
	if err != nil {
		return fmt.Errorf("delta upload: %w", err)
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		_ = m.blobs.AbortUpload(context.WithoutCancel(ctx), hex.EncodeToString(id))
		return fmt.Errorf("delta upload: %w", err)
	}
	if _, err := w.Commit(ctx, d, size); err != nil {
		_ = m.blobs.AbortUpload(context.WithoutCancel(ctx), hex.EncodeToString(id))
		return fmt.Errorf("delta commit: %w", err)
	}
	if err := m.store.LinkBlob(ctx, repo, d, size); err != nil {
		return fmt.Errorf("link delta %s into %s: %w", d, repo, err)
	}
	// gc may have taken the bytes between the commit and the link (a
	// re-made delta identical to a collected one): check, as the
	// registry does after its own links.
	if _, err := m.blobs.Stat(ctx, d); err != nil {
		return fmt.Errorf("delta %s after linking: %w", d, err)
	}
	return nil
}

// decompressible reports whether Berth reads layers of media type mt.
func decompressible(mt string) bool {
	_, ok := compression(mt)
	return ok
}

// compression returns the compression of a layer media type: "gzip",
// "zstd" or "" (plain tar).
func compression(mt string) (string, bool) {
	switch {
	case mt == v1.MediaTypeImageLayer || mt == "application/vnd.docker.image.rootfs.diff.tar":
		return "", true
	case mt == v1.MediaTypeImageLayerGzip || mt == "application/vnd.docker.image.rootfs.diff.tar.gzip":
		return "gzip", true
	case mt == v1.MediaTypeImageLayerZstd || strings.HasSuffix(mt, ".tar+zstd"):
		return "zstd", true
	}
	return "", false
}

// layerReader is a layer blob's uncompressed tar, hashed as it is read.
type layerReader struct {
	blob    io.ReadCloser
	r       io.Reader // the uncompressed stream
	closer  func()
	h       hash.Hash
	readErr error // the first error reading the blob itself
}

// openLayer opens the layer blob desc, uncompressed.
func (m *Manager) openLayer(ctx context.Context, desc v1.Descriptor) (*layerReader, error) {
	f, err := m.blobs.Open(ctx, desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	lr := &layerReader{blob: f, h: digest.SHA256.Hash(), closer: func() {}}
	raw := &errReader{r: bufio.NewReaderSize(f, 256<<10), err: &lr.readErr}
	kind, _ := compression(desc.MediaType)
	switch kind {
	case "gzip":
		zr, err := gzip.NewReader(raw)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("layer %s: gzip: %w", desc.Digest, err)
		}
		lr.r, lr.closer = zr, func() { zr.Close() }
	case "zstd":
		zr, err := zstd.NewReader(raw, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("layer %s: zstd: %w", desc.Digest, err)
		}
		lr.r, lr.closer = zr, zr.Close
	default:
		lr.r = raw
	}
	lr.r = &capReader{r: io.TeeReader(lr.r, lr.h), left: m.opts.MaxTarBytes}
	return lr, nil
}

// errTarTooLarge: a layer's uncompressed tar passes Options.MaxTarBytes.
var errTarTooLarge = errors.New("uncompressed layer over the limit")

// capReader fails once more than left bytes were read.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, errTarTooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, errTarTooLarge
	}
	return n, err
}

func (l *layerReader) Read(p []byte) (int, error) { return l.r.Read(p) }

// drain reads what the consumer left (tar padding after the end blocks)
// so the DiffID covers the whole stream.
func (l *layerReader) drain() error {
	if _, err := io.Copy(io.Discard, l.r); err != nil {
		return fmt.Errorf("read layer: %w", err)
	}
	return nil
}

func (l *layerReader) diffID() digest.Digest { return digest.NewDigest(digest.SHA256, l.h) }

// err is the first error of the blob store while reading (not of the
// decompressor).
func (l *layerReader) err() error { return l.readErr }

func (l *layerReader) Close() error {
	l.closer()
	return l.blob.Close()
}

// errReader records the first error of r in *err.
type errReader struct {
	r   io.Reader
	err *error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && *e.err == nil {
		*e.err = err
	}
	return n, err
}

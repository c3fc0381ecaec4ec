// Package s3 is the blob store on S3-compatible object storage (AWS S3,
// MinIO, Ceph RGW …), for replicas that share one bucket. It passes
// blob/blobtest against a real MinIO.
//
// # Keys
//
//	<prefix>blobs/<algorithm>/<2 hex>/<hex>        a committed blob
//	<prefix>uploads/<id>/current                   the attempt an upload continues
//	<prefix>uploads/<id>/<attempt>/tail-<offset>   a staged tail (State)
//	<prefix>uploads/<id>/<attempt>/data            the multipart upload's object
//
// # Uploads
//
// A Writer hashes (sha256) and buffers what it is given; every PartSize
// bytes go to S3 as a part of a multipart upload. State makes everything
// written durable: the buffered tail, shorter than S3's 5 MiB minimum
// part, is staged as an object of its own. The state returned (the
// attempt, the multipart upload id, the parts with their ETags, the
// staged tail and the marshalled hash) lets any replica continue: it reads
// the tail back (at most one part) and goes on. A new upload (the zero
// state) starts a new attempt, named by a random nonce, and records it in
// uploads/<id>/current; an upload resumes only from a state of the current
// attempt, so a state that an attempt since then replaced is refused
// (ErrNotFound: the client starts again), and no two writers ever write to
// the same key. Which of two racing writers' states counts is decided by
// the metadata store's offset compare-and-swap; the other's objects are
// removed with the upload.
//
// Commit checks the digest (sha256 from the hash state; sha512 by reading
// the assembled object back) and the size, then makes the blob visible
// at its content key: a blob with no part is put in one request; a
// multipart upload is completed and copied to the content key (a
// server-side copy, multipart for objects over 5 GiB). A blob that already
// exists is success, and its time is refreshed (copied onto itself), so
// gc's grace counts from the latest push. Commit and AbortUpload abort the
// upload's multipart uploads and delete its objects.
//
// # Consistency
//
// The store needs S3's strong read-after-write consistency (AWS since
// December 2020, MinIO, Ceph RGW): a Stat after a Delete returns says the
// blob is gone, a Stat after a commit finds it, a listing shows what was
// written. Stores without it break gc's protocol (see blob.Manager).
package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
)

// minPartSize is S3's smallest part but the last.
const minPartSize = 5 << 20

// DefaultPartSize is the part size when Options.PartSize is 0.
const DefaultPartSize = 16 << 20

// Options configure a Store.
type Options struct {
	// Endpoint is the server's URL (http://127.0.0.1:9000): its scheme
	// decides TLS.
	Endpoint string
	Region   string
	Bucket   string
	// Prefix is put before every key ("" or ending in "/").
	Prefix string
	// AccessKey and SecretKey; when both are empty the standard AWS
	// environment variables and shared credentials file are used.
	AccessKey, SecretKey string
	// PathStyle addresses the bucket in the path (MinIO, most
	// self-hosted stores) rather than the host name.
	PathStyle bool
	// PartSize is the size of a multipart upload's parts (at least
	// 5 MiB; 0: DefaultPartSize). A writer holds at most one part in
	// memory.
	PartSize int64
	// MaxRetries bounds the SDK's retries of a failed request (500,
	// 503, SlowDown, connection errors) with backoff; 0: 3.
	MaxRetries int
	// Transport replaces the HTTP transport (tests inject faults).
	Transport http.RoundTripper
}

// Store is a blob.Store on a bucket.
type Store struct {
	c        *minio.Client
	core     minio.Core
	bucket   string
	prefix   string
	partSize int64
	log      *slog.Logger
}

var _ blob.Store = (*Store)(nil)

// New returns a Store on opts.Bucket, which must exist. A nil logger
// discards.
func New(ctx context.Context, opts Options, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(opts.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("s3: endpoint %q is not an http(s) URL", opts.Endpoint)
	}
	if opts.Bucket == "" {
		return nil, errors.New("s3: no bucket")
	}
	if opts.Prefix != "" && !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	part := opts.PartSize
	if part == 0 {
		part = DefaultPartSize
	}
	if part < minPartSize {
		return nil, fmt.Errorf("s3: part size %d is under S3's minimum of 5 MiB", part)
	}
	var creds *credentials.Credentials
	if opts.AccessKey != "" || opts.SecretKey != "" {
		creds = credentials.NewStaticV4(opts.AccessKey, opts.SecretKey, "")
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.FileAWSCredentials{}, &credentials.IAM{},
		})
	}
	lookup := minio.BucketLookupAuto
	if opts.PathStyle {
		lookup = minio.BucketLookupPath
	}
	retries := opts.MaxRetries
	if retries <= 0 {
		retries = 3
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds: creds, Secure: u.Scheme == "https", Region: opts.Region,
		BucketLookup: lookup, Transport: opts.Transport, MaxRetries: retries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	c.SetAppInfo("berth", "1")
	ok, err := c.BucketExists(ctx, opts.Bucket)
	if err != nil {
		return nil, fmt.Errorf("s3: bucket %s at %s: %w", opts.Bucket, u.Host, err)
	}
	if !ok {
		return nil, fmt.Errorf("s3: bucket %s does not exist at %s", opts.Bucket, u.Host)
	}
	return &Store{c: c, core: minio.Core{Client: c}, bucket: opts.Bucket, prefix: opts.Prefix, partSize: part, log: logger}, nil
}

// blobKey is the key of a committed blob.
func (s *Store) blobKey(d digest.Digest) (string, error) {
	if err := blob.ValidateDigest(d); err != nil {
		return "", err
	}
	hex := d.Encoded()
	return s.prefix + "blobs/" + string(d.Algorithm()) + "/" + hex[:2] + "/" + hex, nil
}

func (s *Store) uploadPrefix(id string) string { return s.prefix + "uploads/" + id + "/" }

// notFound reports whether err is S3's "no such key/upload".
func notFound(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == minio.NoSuchKey || code == minio.NoSuchUpload || code == "NotFound"
}

// Stat implements blob.Provider.
func (s *Store) Stat(ctx context.Context, d digest.Digest) (blob.Info, error) {
	key, err := s.blobKey(d)
	if err != nil {
		return blob.Info{}, err
	}
	oi, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if notFound(err) {
			return blob.Info{}, fmt.Errorf("blob %s: %w", d, blob.ErrNotFound)
		}
		return blob.Info{}, fmt.Errorf("s3: stat %s: %w", d, err)
	}
	return blob.Info{Digest: d, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// Open implements blob.Provider: the reader fetches ranges lazily, so a
// Seek then Read (http.ServeContent's Range) reads only what it needs.
func (s *Store) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, error) {
	if _, err := s.Stat(ctx, d); err != nil {
		return nil, err
	}
	key, _ := s.blobKey(d)
	obj, err := s.c.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("s3: open %s: %w", d, err)
	}
	return obj, nil
}

// RedirectURL implements blob.Redirector: a presigned GET of the blob,
// valid for ttl.
func (s *Store) RedirectURL(ctx context.Context, d digest.Digest, ttl time.Duration) (string, error) {
	key, err := s.blobKey(d)
	if err != nil {
		return "", err
	}
	u, err := s.c.PresignedGetObject(ctx, s.bucket, key, ttl, nil)
	if err != nil {
		return "", fmt.Errorf("s3: presign %s: %w", d, err)
	}
	return u.String(), nil
}

// Delete implements blob.Manager.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	if _, err := s.Stat(ctx, d); err != nil {
		return err
	}
	key, _ := s.blobKey(d)
	if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("s3: delete %s: %w", d, err)
	}
	return nil
}

// Walk implements blob.Manager.
func (s *Store) Walk(ctx context.Context, fn func(blob.Info) error) error {
	root := s.prefix + "blobs/"
	for oi := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: root, Recursive: true}) {
		if oi.Err != nil {
			return fmt.Errorf("s3: walk: %w", oi.Err)
		}
		rest := strings.TrimPrefix(oi.Key, root) // alg/xx/hex
		alg, tail, _ := strings.Cut(rest, "/")
		d := digest.NewDigestFromEncoded(digest.Algorithm(alg), path.Base(tail))
		if blob.ValidateDigest(d) != nil {
			continue // not a blob of ours
		}
		if err := fn(blob.Info{Digest: d, Size: oi.Size, ModTime: oi.LastModified}); err != nil {
			return err
		}
	}
	return nil
}

// WalkUploads implements blob.Manager: one call per upload, with the time
// of its latest object.
func (s *Store) WalkUploads(ctx context.Context, fn func(id string, modTime time.Time) error) error {
	root := s.prefix + "uploads/"
	var (
		cur    string
		latest time.Time
	)
	flush := func() error {
		if cur == "" {
			return nil
		}
		return fn(cur, latest)
	}
	for oi := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: root, Recursive: true}) {
		if oi.Err != nil {
			return fmt.Errorf("s3: walk uploads: %w", oi.Err)
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(oi.Key, root), "/")
		if id != cur {
			if err := flush(); err != nil {
				return err
			}
			cur, latest = id, time.Time{}
		}
		if oi.LastModified.After(latest) {
			latest = oi.LastModified
		}
	}
	return flush()
}

// AbortUpload implements blob.Ingester.
func (s *Store) AbortUpload(ctx context.Context, id string) error {
	if err := blob.ValidateUploadID(id); err != nil {
		return err
	}
	return s.removeUpload(ctx, id)
}

// removeUpload aborts the multipart uploads and deletes the objects of
// upload id (every attempt).
func (s *Store) removeUpload(ctx context.Context, id string) error {
	p := s.uploadPrefix(id)
	var errs []error
	for mu := range s.c.ListIncompleteUploads(ctx, s.bucket, p, true) {
		if mu.Err != nil {
			errs = append(errs, mu.Err)
			break
		}
		if err := s.core.AbortMultipartUpload(ctx, s.bucket, mu.Key, mu.UploadID); err != nil && !notFound(err) {
			errs = append(errs, err)
		}
	}
	objs := make(chan minio.ObjectInfo)
	var listErr error // written before objs closes
	go func() {
		defer close(objs)
		for oi := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: p, Recursive: true}) {
			if oi.Err != nil {
				listErr = oi.Err
				return
			}
			objs <- oi
		}
	}()
	for re := range s.c.RemoveObjects(ctx, s.bucket, objs, minio.RemoveObjectsOptions{}) {
		if re.Err != nil && !notFound(re.Err) {
			errs = append(errs, re.Err)
		}
	}
	errs = append(errs, listErr)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("s3: remove upload %s: %w", id, err)
	}
	return nil
}

// state is the driver's part of blob.UploadState.
type state struct {
	Attempt  string `json:"attempt"`
	UploadID string `json:"mpu,omitempty"` // the multipart upload, once a part was sent
	Parts    []part `json:"parts,omitempty"`
	Tail     string `json:"tail,omitempty"` // key of the staged tail
	TailSize int64  `json:"tailSize,omitempty"`
	Hash     []byte `json:"sha256"`
}

type part struct {
	N    int    `json:"n"`
	ETag string `json:"etag"`
	Size int64  `json:"size"`
}

// Upload implements blob.Ingester.
func (s *Store) Upload(ctx context.Context, id string, st blob.UploadState) (blob.Writer, error) {
	if err := blob.ValidateUploadID(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	w := &writer{s: s, ctx: ctx, id: id, h: sha256.New()}
	if st.Size < 0 {
		return nil, fmt.Errorf("upload %s: state size %d: %w", id, st.Size, blob.ErrInvalid)
	}
	if st.Size == 0 && len(st.Data) == 0 {
		// A new attempt.
		w.attempt = strings.ToLower(rand.Text())[:16]
		if err := s.putSmall(ctx, s.uploadPrefix(id)+"current", []byte(w.attempt)); err != nil {
			return nil, fmt.Errorf("s3: upload %s: %w", id, err)
		}
		return w, nil
	}
	var ds state
	if err := json.Unmarshal(st.Data, &ds); err != nil || ds.Attempt == "" {
		return nil, fmt.Errorf("upload %s: corrupt state: %w", id, blob.ErrInvalid)
	}
	if err := w.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(ds.Hash); err != nil {
		return nil, fmt.Errorf("upload %s: corrupt hash state: %v: %w", id, err, blob.ErrInvalid)
	}
	total := ds.TailSize
	for _, p := range ds.Parts {
		total += p.Size
	}
	if total != st.Size || hashedBytes(ds.Hash) != uint64(st.Size) {
		return nil, fmt.Errorf("upload %s: state of %d bytes describes %d: %w", id, st.Size, total, blob.ErrInvalid)
	}
	cur, err := s.getSmall(ctx, s.uploadPrefix(id)+"current", 64)
	if err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("upload %s: %w", id, blob.ErrNotFound)
		}
		return nil, fmt.Errorf("s3: upload %s: %w", id, err)
	}
	if string(cur) != ds.Attempt {
		// A later attempt (or none) replaced this one's data.
		return nil, fmt.Errorf("upload %s: state of a replaced attempt: %w", id, blob.ErrNotFound)
	}
	w.attempt, w.uploadID, w.parts, w.size = ds.Attempt, ds.UploadID, ds.Parts, st.Size
	if ds.Tail != "" {
		tail, err := s.getSmall(ctx, ds.Tail, s.partSize)
		if err != nil {
			if notFound(err) {
				return nil, fmt.Errorf("upload %s: tail: %w", id, blob.ErrNotFound)
			}
			return nil, fmt.Errorf("s3: upload %s: tail: %w", id, err)
		}
		if int64(len(tail)) != ds.TailSize {
			return nil, fmt.Errorf("upload %s: tail has %d bytes, state says %d: %w", id, len(tail), ds.TailSize, blob.ErrSizeInvalid)
		}
		w.buf = tail
	}
	return w, nil
}

// hashedBytes reads the byte count at the end of a marshalled sha256.
func hashedBytes(b []byte) uint64 {
	const marshaledSize = 4 + 8*4 + sha256.BlockSize + 8
	if len(b) != marshaledSize {
		return ^uint64(0)
	}
	var n uint64
	for _, c := range b[len(b)-8:] {
		n = n<<8 | uint64(c)
	}
	return n
}

func (s *Store) putSmall(ctx context.Context, key string, data []byte) error {
	_, err := s.c.PutObject(ctx, s.bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true})
	return err
}

// getSmall reads a whole object of at most max bytes.
func (s *Store) getSmall(ctx context.Context, key string, max int64) ([]byte, error) {
	rc, _, _, err := s.core.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("object %s is larger than %d bytes", key, max)
	}
	return b, nil
}

// writer is one attempt's writer of an upload.
type writer struct {
	s        *Store
	ctx      context.Context // the Upload call's: bounds the parts' requests
	id       string
	attempt  string
	uploadID string
	parts    []part
	buf      []byte // written, not yet in a part
	h        hash.Hash
	size     int64
	closed   bool
	err      error
}

func (w *writer) key(name string) string { return w.s.uploadPrefix(w.id) + w.attempt + "/" + name }

// Write implements io.Writer: bytes are hashed and buffered; each full
// part is sent.
func (w *writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, fmt.Errorf("upload %s: writer closed", w.id)
	}
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		room := int(w.s.partSize) - len(w.buf)
		k := min(room, len(p))
		if w.buf == nil {
			w.buf = make([]byte, 0, w.s.partSize)
		}
		w.buf = append(w.buf, p[:k]...)
		w.h.Write(p[:k])
		w.size += int64(k)
		n += k
		p = p[k:]
		if int64(len(w.buf)) == w.s.partSize {
			if err := w.sendPart(w.ctx); err != nil {
				w.err = fmt.Errorf("upload %s: part: %w", w.id, err)
				return n, w.err
			}
		}
	}
	return n, nil
}

// sendPart sends the buffer as the next part.
func (w *writer) sendPart(ctx context.Context) error {
	if w.uploadID == "" {
		id, err := w.s.core.NewMultipartUpload(ctx, w.s.bucket, w.key("data"), minio.PutObjectOptions{})
		if err != nil {
			return err
		}
		w.uploadID = id
	}
	n := len(w.parts) + 1
	op, err := w.s.core.PutObjectPart(ctx, w.s.bucket, w.key("data"), w.uploadID, n,
		bytes.NewReader(w.buf), int64(len(w.buf)), minio.PutObjectPartOptions{})
	if err != nil {
		return err
	}
	w.parts = append(w.parts, part{N: n, ETag: op.ETag, Size: int64(len(w.buf))})
	w.buf = w.buf[:0]
	return nil
}

// State implements blob.Writer: the buffered tail is staged as an object.
func (w *writer) State() (blob.UploadState, error) {
	if w.closed {
		return blob.UploadState{}, fmt.Errorf("upload %s: writer closed", w.id)
	}
	if w.err != nil {
		return blob.UploadState{}, w.err
	}
	ds := state{Attempt: w.attempt, UploadID: w.uploadID, Parts: w.parts}
	if len(w.buf) > 0 {
		ds.Tail = w.key("tail-" + strconv.FormatInt(w.size, 10))
		ds.TailSize = int64(len(w.buf))
		if err := w.s.putSmall(w.ctx, ds.Tail, w.buf); err != nil {
			w.err = fmt.Errorf("s3: upload %s: stage tail: %w", w.id, err)
			return blob.UploadState{}, w.err
		}
	}
	hb, err := w.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return blob.UploadState{}, fmt.Errorf("upload %s: hash state: %w", w.id, err)
	}
	ds.Hash = hb
	data, err := json.Marshal(ds)
	if err != nil {
		return blob.UploadState{}, fmt.Errorf("upload %s: state: %w", w.id, err)
	}
	return blob.UploadState{Size: w.size, Data: data}, nil
}

// Close implements blob.Writer.
func (w *writer) Close() error {
	w.closed = true
	w.buf = nil
	return nil
}

// Commit implements blob.Writer.
func (w *writer) Commit(ctx context.Context, expected digest.Digest, size int64) (blob.Info, error) {
	if w.closed {
		return blob.Info{}, fmt.Errorf("upload %s: writer closed", w.id)
	}
	defer w.Close()
	if w.err != nil {
		return blob.Info{}, w.err
	}
	if err := ctx.Err(); err != nil {
		return blob.Info{}, fmt.Errorf("upload %s: %w", w.id, err)
	}
	key, err := w.s.blobKey(expected)
	if err != nil {
		return blob.Info{}, err
	}
	mismatch := func(e error) (blob.Info, error) {
		if rerr := w.s.removeUpload(context.WithoutCancel(ctx), w.id); rerr != nil {
			w.s.log.Warn("s3: removing a refused upload", "upload", w.id, "err", rerr)
		}
		return blob.Info{}, e
	}
	if size >= 0 && size != w.size {
		return mismatch(fmt.Errorf("upload %s: %d bytes written, %d expected: %w", w.id, w.size, size, blob.ErrSizeInvalid))
	}
	if expected.Algorithm() == digest.SHA256 {
		if got := digest.NewDigest(digest.SHA256, w.h); got != expected {
			return mismatch(fmt.Errorf("upload %s: bytes hash to %s, not %s: %w", w.id, got, expected, blob.ErrDigestMismatch))
		}
	}
	// A blob that exists already: refresh its time, drop the upload. One
	// that gc deletes meanwhile (the touch finds no key) is written anew.
	if _, err := w.s.c.StatObject(ctx, w.s.bucket, key, minio.StatObjectOptions{}); err == nil {
		err := w.s.touch(ctx, key)
		if err == nil {
			if err := w.s.removeUpload(ctx, w.id); err != nil {
				w.s.log.Warn("s3: removing a committed upload", "upload", w.id, "err", err)
			}
			return blob.Info{Digest: expected, Size: w.size, ModTime: time.Now()}, nil
		}
		if !notFound(err) {
			return blob.Info{}, fmt.Errorf("s3: refresh %s: %w", expected, err)
		}
	} else if !notFound(err) {
		return blob.Info{}, fmt.Errorf("s3: stat %s: %w", expected, err)
	}

	if len(w.parts) == 0 {
		if expected.Algorithm() != digest.SHA256 && expected.Algorithm().FromBytes(w.buf) != expected {
			return mismatch(fmt.Errorf("upload %s: bytes do not hash to %s: %w", w.id, expected, blob.ErrDigestMismatch))
		}
		if err := w.s.putSmall(ctx, key, w.buf); err != nil {
			return blob.Info{}, fmt.Errorf("s3: commit %s: %w", expected, err)
		}
	} else {
		if len(w.buf) > 0 {
			if err := w.sendPart(ctx); err != nil {
				return blob.Info{}, fmt.Errorf("s3: upload %s: last part: %w", w.id, err)
			}
		}
		cps := make([]minio.CompletePart, len(w.parts))
		for i, p := range w.parts {
			cps[i] = minio.CompletePart{PartNumber: p.N, ETag: p.ETag}
		}
		data := w.key("data")
		if _, err := w.s.core.CompleteMultipartUpload(ctx, w.s.bucket, data, w.uploadID, cps, minio.PutObjectOptions{}); err != nil {
			return blob.Info{}, fmt.Errorf("s3: upload %s: complete: %w", w.id, err)
		}
		if expected.Algorithm() != digest.SHA256 {
			if err := w.s.verify(ctx, data, expected); err != nil {
				if errors.Is(err, blob.ErrDigestMismatch) {
					return mismatch(fmt.Errorf("upload %s: %w", w.id, err))
				}
				return blob.Info{}, err
			}
		}
		if _, err := w.s.c.ComposeObject(ctx, minio.CopyDestOptions{Bucket: w.s.bucket, Object: key},
			minio.CopySrcOptions{Bucket: w.s.bucket, Object: data}); err != nil {
			return blob.Info{}, fmt.Errorf("s3: commit %s: %w", expected, err)
		}
	}
	if err := w.s.removeUpload(ctx, w.id); err != nil {
		w.s.log.Warn("s3: removing a committed upload", "upload", w.id, "err", err)
	}
	return blob.Info{Digest: expected, Size: w.size, ModTime: time.Now()}, nil
}

// verify streams object key and checks that it hashes to d.
func (s *Store) verify(ctx context.Context, key string, d digest.Digest) error {
	rc, _, _, err := s.core.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return fmt.Errorf("s3: verify: %w", err)
	}
	defer rc.Close()
	v := d.Verifier()
	if _, err := io.Copy(v, rc); err != nil {
		return fmt.Errorf("s3: verify: %w", err)
	}
	if !v.Verified() {
		return fmt.Errorf("bytes do not hash to %s: %w", d, blob.ErrDigestMismatch)
	}
	return nil
}

// touch refreshes an object's time by copying it onto itself.
func (s *Store) touch(ctx context.Context, key string) error {
	_, err := s.c.ComposeObject(ctx,
		minio.CopyDestOptions{Bucket: s.bucket, Object: key, ReplaceMetadata: true,
			UserMetadata: map[string]string{"Berth-Touched": time.Now().UTC().Format(time.RFC3339Nano)}},
		minio.CopySrcOptions{Bucket: s.bucket, Object: key})
	return err
}

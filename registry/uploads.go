package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/oci"
)

// startUpload serves POST /v2/<name>/blobs/uploads/: a cross-repository
// mount (?mount=&from=, or ?mount= alone for a blob already known), a
// monolithic upload (?digest=), or a new upload session.
func (reg *Registry) startUpload(w http.ResponseWriter, r *http.Request, name string) error {
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		d, err := parseDigest(m)
		if err != nil {
			return err
		}
		mounted, err := reg.mount(r, name, d, q.Get("from"))
		if err != nil {
			return err
		}
		if mounted {
			return blobCreated(w, name, d)
		}
		// Not mountable: the spec says to answer with a new session.
	} else if ds := q.Get("digest"); ds != "" {
		d, err := parseDigest(ds)
		if err != nil {
			return err
		}
		return reg.monolithic(w, r, name, d)
	}
	now := reg.now()
	u := meta.Upload{ID: newUploadID(), Repo: name, State: encodeState(blob.UploadState{}), Created: now, Updated: now, Client: reg.clientID(r)}
	caps := meta.UploadCaps{PerRepository: max(reg.opts.MaxUploadsPerRepository, 0), PerClient: max(reg.opts.MaxUploadsPerClient, 0)}
	if err := reg.meta.CreateUploadCapped(r.Context(), u, caps); err != nil {
		var tooMany *meta.TooManyUploadsError
		if errors.As(err, &tooMany) {
			e := errorf(CodeTooManyRequests, http.StatusTooManyRequests, err,
				"the %s has %d open upload sessions, the limit; finish or cancel one, or wait for idle ones to expire", tooMany.Of, tooMany.Limit)
			e.Header = http.Header{"Retry-After": {strconv.Itoa(uploadRetryAfter)}}
			return e
		}
		return fmt.Errorf("create upload in %s: %w", name, err)
	}
	return uploadAccepted(w, name, u.ID, 0, http.StatusAccepted)
}

// uploadRetryAfter is the Retry-After (seconds) of a 429 for too many
// open sessions: long enough for a pusher's other uploads to finish.
const uploadRetryAfter = 60

// mountBatch is how many repositories linking a blob a mount without from
// reads at a time while looking for one the caller may pull.
const mountBatch = 100

// mountSource finds a repository linking d that the request may pull, for
// a mount without from. Without Access any repository does ("" and
// ok=true: BlobKnown answers).
func (reg *Registry) mountSource(r *http.Request, d digest.Digest) (repo string, ok bool, err error) {
	if reg.opts.Access == nil {
		return "", true, nil
	}
	after := ""
	for {
		repos, err := reg.meta.LinkingRepositories(r.Context(), d, after, mountBatch)
		if err != nil {
			return "", false, fmt.Errorf("repositories linking %s: %w", d, err)
		}
		for _, repo := range repos {
			if reg.allowed(r, repo, ActionPull) {
				return repo, true, nil
			}
		}
		if len(repos) < mountBatch {
			return "", false, nil
		}
		after = repos[len(repos)-1]
	}
}

// mount links d into name if it is linked in from (or, without from, in any
// repository) and its bytes exist. It reports false when there is nothing
// to mount.
func (reg *Registry) mount(r *http.Request, name string, d digest.Digest, from string) (bool, error) {
	var size int64
	var err error
	if from == "" {
		// Only repositories the caller may read are considered (V8, V14).
		source, ok, err := reg.mountSource(r, d)
		if err != nil || !ok {
			return false, err
		}
		from = source
	}
	if from != "" {
		// A refused pull on from is a failed mount: the client gets a
		// session, as for any mount that cannot be done.
		if oci.ValidateName(from) != nil || !reg.allowed(r, from, ActionPull) {
			return false, nil
		}
		size, err = reg.linkedSize(r, from, d)
	} else {
		size, err = reg.meta.BlobKnown(r.Context(), d)
		if err == nil {
			_, err = reg.blobs.Stat(r.Context(), d)
		}
	}
	if errors.Is(err, meta.ErrBlobNotFound) || errors.Is(err, blob.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mount %s from %q into %s: %w", d, from, name, err)
	}
	// As in linkCommitted: a tombstone is not linked, and the bytes are
	// checked after linking; either way there is nothing to mount and the
	// client uploads instead.
	err = reg.meta.LinkBlob(r.Context(), name, d, size)
	if errors.Is(err, meta.ErrBlobDeleting) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mount %s into %s: %w", d, name, err)
	}
	if _, err := reg.blobs.Stat(r.Context(), d); errors.Is(err, blob.ErrNotFound) {
		reg.dropDanglingLink(r.Context(), name, d)
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("mount %s into %s: %w", d, name, err)
	}
	return true, nil
}

// monolithic stores the body of POST ?digest= as the blob d.
func (reg *Registry) monolithic(w http.ResponseWriter, r *http.Request, name string, d digest.Digest) error {
	ctx := r.Context()
	id := newUploadID()
	bw, err := reg.blobs.Upload(ctx, id, blob.UploadState{})
	if err != nil {
		return fmt.Errorf("monolithic upload of %s: %w", d, err)
	}
	if _, err := reg.copyBody(w, r, bw, reg.opts.MaxBlobBytes); err != nil {
		bw.Close()
		_ = reg.blobs.AbortUpload(ctx, id)
		return err
	}
	size := int64(-1)
	if r.ContentLength >= 0 {
		size = r.ContentLength
	}
	info, err := bw.Commit(ctx, d, size)
	if err != nil {
		_ = reg.blobs.AbortUpload(ctx, id)
		return fmt.Errorf("monolithic upload of %s: %w", d, err)
	}
	if err := reg.linkCommitted(ctx, name, d, info.Size, ""); err != nil {
		return err
	}
	return blobCreated(w, name, d)
}

// uploadStatus serves GET of an upload session: its progress.
func (reg *Registry) uploadStatus(w http.ResponseWriter, r *http.Request, name, id string) error {
	u, err := reg.session(r, name, id)
	if err != nil {
		return err
	}
	return uploadAccepted(w, name, id, u.Offset, http.StatusNoContent)
}

// patchUpload appends one chunk (or, without Content-Range, a stream) to an
// upload session.
func (reg *Registry) patchUpload(w http.ResponseWriter, r *http.Request, name, id string) error {
	return reg.withChunk(w, r, name, id, func(u meta.Upload, bw blob.Writer) error {
		defer bw.Close()
		st, err := bw.State()
		if err != nil {
			return fmt.Errorf("upload %s: %w", id, err)
		}
		if err := reg.meta.UpdateUpload(r.Context(), id, u.Offset, st.Size, encodeState(st)); err != nil {
			return fmt.Errorf("upload %s: %w", id, err)
		}
		return uploadAccepted(w, name, id, st.Size, http.StatusAccepted)
	})
}

// putUpload completes an upload session with an optional last chunk and
// commits the blob under ?digest=.
func (reg *Registry) putUpload(w http.ResponseWriter, r *http.Request, name, id string) error {
	ctx := r.Context()
	ds := r.URL.Query().Get("digest")
	if ds == "" {
		return errorf(CodeDigestInvalid, 0, nil, "digest query parameter is required to complete an upload")
	}
	d, err := parseDigest(ds)
	if err != nil {
		return err
	}
	return reg.withChunk(w, r, name, id, func(_ meta.Upload, bw blob.Writer) error {
		info, err := bw.Commit(ctx, d, -1)
		if err != nil {
			if errors.Is(err, blob.ErrNotFound) {
				return reg.lostUpload(ctx, id, err)
			}
			if errors.Is(err, blob.ErrDigestMismatch) || errors.Is(err, blob.ErrSizeInvalid) {
				// The blob store removed the data; the session is over.
				_ = reg.meta.DeleteUpload(ctx, id)
			}
			return fmt.Errorf("complete upload %s as %s: %w", id, d, err)
		}
		// The link and the session's removal are one commit.
		if err := reg.linkCommitted(ctx, name, d, info.Size, id); err != nil {
			_ = reg.meta.DeleteUpload(ctx, id) // the upload's data is gone either way
			return err
		}
		return blobCreated(w, name, d)
	})
}

// withChunk serialises work on upload id, loads the session, streams the
// request body into it (checking Content-Range) and hands the open writer
// to then, which commits or closes it. A full disk anywhere ends the
// upload (endUploadIfNoSpace).
func (reg *Registry) withChunk(w http.ResponseWriter, r *http.Request, name, id string, then func(meta.Upload, blob.Writer) error) error {
	if !validUploadID(id) {
		return errorf(CodeBlobUploadUnknown, 0, nil, "malformed upload id")
	}
	unlock, err := reg.locks.lock(r.Context(), id)
	if err != nil {
		return err
	}
	defer unlock()
	u, err := reg.session(r, name, id)
	if err != nil {
		return err
	}
	st, err := decodeState(u)
	if err != nil {
		return err
	}
	bw, err := reg.appendBody(w, r, name, u, st)
	if err == nil {
		err = then(u, bw)
	}
	if err != nil {
		reg.endUploadIfNoSpace(r.Context(), id, err)
	}
	return err
}

// endUploadIfNoSpace ends upload id when err is a full disk: its data is
// removed, freeing the space it held, and the session is deleted, so the
// client (told 507 BLOB_UPLOAD_INVALID) starts a new upload once space is
// freed. Keeping a resumable session would hold partial data on a full disk
// for as long as the operator takes to free space. Failures are logged: the
// data and the session then expire (gc).
func (reg *Registry) endUploadIfNoSpace(ctx context.Context, id string, err error) {
	if !noSpace(err) {
		return
	}
	ctx = context.WithoutCancel(ctx)
	reg.log.WarnContext(ctx, "upload discarded: storage full", "upload", id, "err", err)
	if err := reg.blobs.AbortUpload(ctx, id); err != nil {
		reg.log.WarnContext(ctx, "removing upload data after a full disk", "upload", id, "err", err)
	}
	if err := reg.meta.DeleteUpload(ctx, id); err != nil && !errors.Is(err, meta.ErrUploadNotFound) {
		reg.log.WarnContext(ctx, "deleting upload session after a full disk", "upload", id, "err", err)
	}
}

// cancelUpload serves DELETE of an upload session.
func (reg *Registry) cancelUpload(w http.ResponseWriter, r *http.Request, name, id string) error {
	if !validUploadID(id) {
		return errorf(CodeBlobUploadUnknown, 0, nil, "malformed upload id")
	}
	unlock, err := reg.locks.lock(r.Context(), id)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := reg.session(r, name, id); err != nil {
		return err
	}
	if err := reg.blobs.AbortUpload(r.Context(), id); err != nil {
		return fmt.Errorf("cancel upload %s: %w", id, err)
	}
	if err := reg.meta.DeleteUpload(r.Context(), id); err != nil {
		return fmt.Errorf("cancel upload %s: %w", id, err)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// session loads upload id of repository name.
func (reg *Registry) session(r *http.Request, name, id string) (meta.Upload, error) {
	if !validUploadID(id) {
		return meta.Upload{}, errorf(CodeBlobUploadUnknown, 0, nil, "malformed upload id")
	}
	u, err := reg.meta.GetUpload(r.Context(), name, id)
	if err != nil {
		return meta.Upload{}, fmt.Errorf("upload %s in %s: %w", id, name, err)
	}
	return u, nil
}

// appendBody checks the request's Content-Range against the session and
// streams the body into the upload. On success the writer is open and the
// caller commits or closes it.
func (reg *Registry) appendBody(w http.ResponseWriter, r *http.Request, name string, u meta.Upload, st blob.UploadState) (blob.Writer, error) {
	want := int64(-1)
	if cr := r.Header.Get("Content-Range"); cr != "" {
		br, err := parseContentRange(cr)
		if err != nil {
			return nil, errorf(CodeBlobUploadInvalid, http.StatusRequestedRangeNotSatisfiable, err, "%v", err)
		}
		if br.start != u.Offset {
			e := errorf(CodeBlobUploadInvalid, http.StatusRequestedRangeNotSatisfiable, nil,
				"chunk starts at %d, the upload has %d bytes", br.start, u.Offset)
			e.Header = http.Header{}
			e.Header.Set("Location", uploadLocation(name, u.ID))
			e.Header.Set("Range", rangeHeader(u.Offset))
			e.Header.Set("Docker-Upload-UUID", u.ID)
			return nil, e
		}
		want = br.end - br.start + 1
		if r.ContentLength >= 0 && r.ContentLength != want {
			return nil, errorf(CodeSizeInvalid, 0, nil, "Content-Length %d does not match Content-Range %s", r.ContentLength, cr)
		}
	}
	bw, err := reg.blobs.Upload(r.Context(), u.ID, st)
	if errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrSizeInvalid) {
		return nil, reg.lostUpload(r.Context(), u.ID, err)
	}
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", u.ID, err)
	}
	n, err := reg.copyBody(w, r, bw, reg.opts.MaxBlobBytes-u.Offset)
	if err == nil && want >= 0 && n != want {
		err = errorf(CodeSizeInvalid, 0, nil, "chunk has %d bytes, Content-Range says %d", n, want)
	}
	if err != nil {
		bw.Close()
		return nil, err
	}
	return bw, nil
}

// errBody marks a failure to read the request body (the client's side).
type errBody struct{ err error }

func (e errBody) Error() string { return "reading request body: " + e.err.Error() }
func (e errBody) Unwrap() error { return e.err }

// bodyReader reads a request body, pushing the connection's read deadline
// back by idle before every read (when the server supports it), and marks
// its errors as the client's.
type bodyReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
}

func (b bodyReader) Read(p []byte) (int, error) {
	if b.rc != nil {
		_ = b.rc.SetReadDeadline(time.Now().Add(b.idle)) // ErrNotSupported: no idle limit
	}
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return n, err
		}
		return n, errBody{err}
	}
	return n, err
}

// copyBody streams the request body into dst, at most limit bytes (413
// past it). Errors reading the body are the client's (400); errors writing
// are the store's.
func (reg *Registry) copyBody(w http.ResponseWriter, r *http.Request, dst io.Writer, limit int64) (int64, error) {
	if limit < 0 {
		limit = 0
	}
	if r.ContentLength > limit {
		return 0, blobTooLarge(nil, reg.opts.MaxBlobBytes)
	}
	body := bodyReader{r: http.MaxBytesReader(w, r.Body, limit), rc: http.NewResponseController(w), idle: reg.opts.BodyIdleTimeout}
	n, err := pipeCopy(dst, body)
	if err == nil {
		// Done reading: the rest of the exchange has no idle limit. After
		// an error the deadline stays, so the server's discard of an
		// unread body cannot hang on a stalled client either.
		_ = body.rc.SetReadDeadline(time.Time{})
	}
	var be errBody
	if errors.As(err, &be) {
		return n, errorf(CodeBlobUploadInvalid, 0, err, "could not read the request body")
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return n, blobTooLarge(err, reg.opts.MaxBlobBytes)
	}
	if err != nil {
		return n, fmt.Errorf("storing request body: %w", err)
	}
	return n, nil
}

// blobTooLarge is the 413 of a blob over the limit.
func blobTooLarge(cause error, limit int64) *Error {
	e := errorf(CodeSizeInvalid, http.StatusRequestEntityTooLarge, cause, "the blob is larger than the limit of %d bytes", limit)
	e.Message = "blob exceeds the registry's size limit"
	return e
}

func blobCreated(w http.ResponseWriter, name string, d digest.Digest) error {
	h := w.Header()
	h.Set("Location", "/v2/"+name+"/blobs/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

func uploadAccepted(w http.ResponseWriter, name, id string, offset int64, status int) error {
	h := w.Header()
	h.Set("Location", uploadLocation(name, id))
	h.Set("Range", rangeHeader(offset))
	h.Set("Docker-Upload-UUID", id)
	h.Set("Content-Length", "0")
	w.WriteHeader(status)
	return nil
}

func uploadLocation(name, id string) string { return "/v2/" + name + "/blobs/uploads/" + id }

// rangeHeader is the spec's Range of an upload holding offset bytes:
// "0-<last byte>", and "0-0" when it is empty.
func rangeHeader(offset int64) string {
	if offset <= 0 {
		return "0-0"
	}
	return "0-" + strconv.FormatInt(offset-1, 10)
}

func newUploadID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validUploadID accepts the ids newUploadID makes, checked before an id
// reaches a store or a path (V24).
func validUploadID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func encodeState(st blob.UploadState) []byte {
	b, _ := json.Marshal(st)
	return b
}

func decodeState(u meta.Upload) (blob.UploadState, error) {
	var st blob.UploadState
	if len(u.State) > 0 {
		if err := json.Unmarshal(u.State, &st); err != nil {
			return st, fmt.Errorf("upload %s: corrupt state: %w", u.ID, err)
		}
	}
	if st.Size != u.Offset {
		return st, fmt.Errorf("upload %s: state size %d differs from offset %d", u.ID, st.Size, u.Offset)
	}
	return st, nil
}

// lostUpload ends a session whose data is gone or shorter than recorded (a
// crash between commit and cleanup, or expiry under a slow client): the
// client is told the upload is unknown, which makes it start a new one,
// rather than that a blob is.
func (reg *Registry) lostUpload(ctx context.Context, id string, cause error) error {
	ctx = context.WithoutCancel(ctx)
	reg.log.WarnContext(ctx, "upload data lost; session ended", "upload", id, "err", cause)
	_ = reg.blobs.AbortUpload(ctx, id)
	if err := reg.meta.DeleteUpload(ctx, id); err != nil && !errors.Is(err, meta.ErrUploadNotFound) {
		reg.log.WarnContext(ctx, "ending a lost upload", "upload", id, "err", err)
	}
	return errorf(CodeBlobUploadUnknown, 0, cause, "the upload's data is gone; start a new upload")
}

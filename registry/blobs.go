package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/meta"
)

// checkLink makes sure blob d is linked in repository name. A pusher's
// HEAD also renews an old link (pushers HEAD a blob to decide whether to
// upload it, and the race the renewal closes is a push's; a puller must
// not keep garbage alive): RefreshLink, which finds the link too, is then
// the one query. A renewal that fails is logged and the link checked
// alone.
func (reg *Registry) checkLink(r *http.Request, name string, d digest.Digest) error {
	ctx := r.Context()
	if r.Method == http.MethodHead && reg.opts.LinkRefreshAfter > 0 && reg.allowed(r, name, ActionPush) {
		err := reg.meta.RefreshLink(ctx, name, d, reg.now().Add(-reg.opts.LinkRefreshAfter))
		switch {
		case err == nil:
			return nil
		case errors.Is(err, meta.ErrBlobNotFound):
			return fmt.Errorf("blob %s in %s: %w", d, name, err)
		}
		reg.log.WarnContext(ctx, "refreshing a blob link", "repo", name, "digest", d, "err", err)
	}
	if _, err := reg.meta.BlobLink(ctx, name, d); err != nil {
		return fmt.Errorf("blob %s in %s: %w", d, name, err)
	}
	return nil
}

// getBlob serves GET and HEAD of /v2/<name>/blobs/<digest>. A blob is served
// only if it is linked in the repository, whatever is deduplicated
// underneath (V8).
func (reg *Registry) getBlob(w http.ResponseWriter, r *http.Request, name, ref string) error {
	ctx := r.Context()
	d, err := parseDigest(ref)
	if err != nil {
		return err
	}
	if err := reg.checkLink(r, name, d); err != nil {
		return err
	}
	info, err := reg.blobs.Stat(ctx, d)
	if err != nil {
		return fmt.Errorf("blob %s in %s: %w", d, name, err)
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", "application/octet-stream")
	blobTag := `"` + d.String() + `"`
	// cacheable marks an answer of the blob's bytes (or of its headers)
	// as the immutable blob it is. Only those: an error set after it
	// (a 416, a blob gone between Stat and Open) would be cached for a
	// year by a shared cache.
	cacheable := func() {
		h.Set("ETag", blobTag)
		h.Set("Cache-Control", "max-age=31536000, immutable")
	}
	rng := r.Header.Get("Range")
	if ir := r.Header.Get("If-Range"); rng != "" && ir != "" && ir != blobTag {
		// The Range is honoured only if If-Range is exactly this blob's
		// ETag (a strong match; Berth sends no Last-Modified, so no date
		// matches). Otherwise it is ignored (RFC 9110 §13.1.5) before
		// http.ServeContent sees it: that reads only the first ETag of
		// If-Range and would honour `"<digest>"x`, past the checks below.
		r = r.Clone(ctx)
		r.Header.Del("Range")
		rng = ""
	}
	// http.ServeContent parses the Range. What it would answer wrongly is
	// refused first: more than maxRanges ranges; a suffix range of zero
	// bytes ("-0", "- 0", "-+0"); any range of an empty blob. It answers
	// the last two with a 206 whose range ends before it starts (RFC 9110
	// §14.1.1: unsatisfiable).
	if rng != "" && (info.Size == 0 || strings.Count(rng, ",") >= maxRanges || zeroSuffix(rng)) {
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(info.Size, 10))
		return errorf(CodeRangeInvalid, http.StatusRequestedRangeNotSatisfiable, errRange,
			"Range %q is not satisfiable (at most %d ranges, no empty one); the blob has %d bytes", rng, maxRanges, info.Size)
	}
	if r.Method == http.MethodHead && rng == "" {
		cacheable()
		h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
		h.Set("Accept-Ranges", "bytes")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if rd, ok := reg.blobs.(blob.Redirector); ok && reg.opts.RedirectTTL > 0 && r.Method == http.MethodGet {
		u, err := rd.RedirectURL(ctx, d, reg.opts.RedirectTTL)
		if err == nil {
			h.Del("Content-Type")
			h.Set("Cache-Control", "no-store") // the URL expires; the blob does not
			h.Set("Location", u)
			w.WriteHeader(http.StatusTemporaryRedirect)
			return nil
		}
		reg.log.WarnContext(ctx, "blob redirect: serving the blob instead", "digest", d, "err", err)
	}
	f, err := reg.blobs.Open(ctx, d)
	if err != nil {
		return fmt.Errorf("blob %s in %s: %w", d, name, err)
	}
	defer f.Close()
	cacheable()
	// No modification time: the ETag (the digest) is the validator.
	// ServeContent parses the Range; its 416 becomes the spec's error.
	out := w
	if rng != "" {
		out = &rangeErrors{ResponseWriter: w, r: r, rng: rng, size: info.Size}
	}
	http.ServeContent(out, r, "", time.Time{}, f)
	return nil
}

// maxRanges bounds the ranges one Range header may ask for.
const maxRanges = 16

// zeroSuffix reports whether a bytes Range asks for a suffix of zero
// bytes among its ranges, read as http.ServeContent reads a suffix
// (spaces trimmed, a sign allowed: "-0", "- 00", "-+0").
func zeroSuffix(rng string) bool {
	specs, ok := strings.CutPrefix(rng, "bytes=")
	if !ok {
		return false
	}
	for spec := range strings.SplitSeq(specs, ",") {
		first, last, ok := strings.Cut(textproto.TrimString(spec), "-")
		if !ok || textproto.TrimString(first) != "" {
			continue
		}
		last = textproto.TrimString(last)
		if n, err := strconv.ParseInt(last, 10, 64); err == nil && n == 0 && last[0] != '-' {
			return true
		}
	}
	return false
}

// rangeErrors passes http.ServeContent's answer through, except its 416
// (a Range that is malformed or that no byte of the blob satisfies),
// which it answers as the spec's error instead, with the blob's size in
// Content-Range, discarding ServeContent's plain-text body.
type rangeErrors struct {
	http.ResponseWriter
	r       *http.Request
	rng     string
	size    int64
	refused bool // a 416 was answered: the rest of the body is ServeContent's, dropped
}

func (w *rangeErrors) WriteHeader(code int) {
	if code == http.StatusPartialContent && emptyRange(w.Header().Get("Content-Range")) {
		// Not caught above (a Range honoured through If-Range): an empty
		// range is unsatisfiable, not a 206.
		code = http.StatusRequestedRangeNotSatisfiable
	}
	if code != http.StatusRequestedRangeNotSatisfiable || w.refused {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.refused = true
	h := w.Header()
	h.Set("Content-Range", "bytes */"+strconv.FormatInt(w.size, 10))
	writeError(w.ResponseWriter, w.r, errorf(CodeRangeInvalid, code, errRange,
		"Range %q is not satisfiable; the blob has %d bytes", w.rng, w.size), h.Get(RequestIDHeader))
}

func (w *rangeErrors) Write(b []byte) (int, error) {
	if w.refused {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// emptyRange reports whether a Content-Range "bytes a-b/n" ends before it
// starts.
func emptyRange(cr string) bool {
	spec, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return false
	}
	spec, _, _ = strings.Cut(spec, "/")
	first, last, ok := strings.Cut(spec, "-")
	a, err1 := strconv.ParseInt(first, 10, 64)
	b, err2 := strconv.ParseInt(last, 10, 64)
	return ok && err1 == nil && err2 == nil && b < a
}

// ReadFrom keeps the underlying writer's (sendfile, on a file).
func (w *rangeErrors) ReadFrom(src io.Reader) (int64, error) {
	if w.refused {
		return io.Copy(io.Discard, src)
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(w.ResponseWriter, src)
}

// Unwrap is for http.ResponseController.
func (w *rangeErrors) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// deleteBlob removes the blob's link from the repository; the bytes stay
// until garbage collection finds no repository links them.
func (reg *Registry) deleteBlob(w http.ResponseWriter, r *http.Request, name, ref string) error {
	d, err := parseDigest(ref)
	if err != nil {
		return err
	}
	if err := reg.meta.UnlinkBlob(r.Context(), name, d); err != nil {
		return fmt.Errorf("delete blob %s in %s: %w", d, name, err)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// linkedSize returns the size of a blob linked in repo whose bytes exist.
func (reg *Registry) linkedSize(r *http.Request, repo string, d digest.Digest) (int64, error) {
	size, err := reg.meta.BlobLink(r.Context(), repo, d)
	if err != nil {
		return 0, err
	}
	if _, err := reg.blobs.Stat(r.Context(), d); err != nil {
		return 0, err
	}
	return size, nil
}

var errRange = errors.New("range not satisfiable")

// linkCommitted links d, whose bytes the caller has just committed, into
// repo, and then checks that the bytes are still there. This is the
// registry's half of the gc protocol (see package gc): gc deletes a blob's
// bytes only while the blob's row is a tombstone, and LinkBlob refuses a
// tombstone, so
//   - a link made before gc claims the blob keeps it (gc claims only
//     unlinked blobs);
//   - a link attempted while gc deletes is refused (meta.ErrBlobDeleting):
//     it is retried briefly, as gc drops the tombstone right after the
//     bytes go;
//   - a link made after the tombstone is dropped succeeds, but the bytes
//     this commit found may have been the ones gc deleted: the Stat after
//     the link sees that, and the push fails rather than be acknowledged.
//
// Once linked with its bytes present, the blob stays until the link goes.
//
// A blob committed through upload session (not "") is linked by
// FinishUpload, which removes the session in the same transaction.
func (reg *Registry) linkCommitted(ctx context.Context, repo string, d digest.Digest, size int64, session string) error {
	delay := 5 * time.Millisecond
	for attempt := 0; ; attempt++ {
		var err error
		if session != "" {
			err = reg.meta.FinishUpload(ctx, session, repo, d, size)
		} else {
			err = reg.meta.LinkBlob(ctx, repo, d, size)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, meta.ErrBlobDeleting) {
			return fmt.Errorf("link %s into %s: %w", d, repo, err)
		}
		if attempt == 8 {
			return errorf(CodeBlobUploadInvalid, http.StatusServiceUnavailable, err,
				"blob %s is being garbage-collected; upload it again", d)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("link %s into %s: %w", d, repo, ctx.Err())
		case <-t.C:
		}
		delay *= 2
	}
	if _, err := reg.blobs.Stat(ctx, d); err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			reg.log.WarnContext(ctx, "committed blob garbage-collected before it was linked", "repo", repo, "digest", d)
			reg.dropDanglingLink(ctx, repo, d)
			return errorf(CodeBlobUploadInvalid, http.StatusServiceUnavailable, err,
				"blob %s was garbage-collected while it was committed; upload it again", d)
		}
		return fmt.Errorf("blob %s in %s: %w", d, repo, err)
	}
	return nil
}

// dropDanglingLink removes a link just made to bytes that turned out to be
// gone (gc took them between commit and link), so that no manifest can be
// accepted against it. It runs even if the client went away.
func (reg *Registry) dropDanglingLink(ctx context.Context, repo string, d digest.Digest) {
	ctx = context.WithoutCancel(ctx)
	if err := reg.meta.UnlinkBlob(ctx, repo, d); err != nil && !errors.Is(err, meta.ErrBlobNotFound) {
		reg.log.WarnContext(ctx, "removing a link to missing bytes", "repo", repo, "digest", d, "err", err)
	}
}

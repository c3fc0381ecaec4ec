package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/oci"
)

// Blobs is what the registry needs of the blob store.
type Blobs interface {
	blob.Provider
	blob.Ingester
}

// Meta is what the registry needs of the metadata store.
type Meta interface {
	meta.BlobLinker
	meta.ManifestStore
	meta.Lister
	meta.ReferrersReader
	meta.UploadStore
}

// Options are the registry's limits. Zero values take the defaults.
type Options struct {
	// RedirectTTL > 0: a blob GET is answered with a 307 to a URL of the
	// blob store's (blob.Redirector, e.g. a presigned S3 GET) valid this
	// long, when the store gives one; HEAD is always answered here.
	RedirectTTL time.Duration
	// MaxManifestBytes caps a manifest body (the spec asks for at least
	// 4 MB); larger bodies get 413.
	MaxManifestBytes int64
	// MaxBlobBytes caps one blob, however it is uploaded (monolithic or
	// the sum of its chunks).
	MaxBlobBytes int64
	// MaxConfigBytes caps the image config read at push time to record its
	// labels and platform; larger configs are stored but not read.
	MaxConfigBytes int64
	// PageMax caps n on tags, catalog and referrers.
	PageMax int
	// LinkRefreshAfter: a blob HEAD in a repository restarts the age of
	// the blob's link there when it is older than this, so that a client
	// which skips an upload because the blob exists is not raced by gc
	// sweeping that link before its manifest arrives. Set it to about half
	// of gc's grace period; 0 disables it.
	LinkRefreshAfter time.Duration
	// BodyIdleTimeout ends an upload whose client sends nothing for this
	// long (the read deadline is pushed back before every read, so a slow
	// but moving upload is never cut).
	BodyIdleTimeout time.Duration
	// SparseManifests accepts image manifests whose layers are not (yet)
	// in the repository, as the OCI conformance suite's sparse data set and
	// partial mirrors expect. The config blob is always required. Index
	// children are never required.
	SparseManifests bool
	// MaxListingBytes caps the body of one page of a listing (tags,
	// catalog, referrers): a page ends early, with a Link to the next, when
	// its body would pass this. A page always holds at least one entry, so
	// paging progresses even past one entry larger than the cap.
	MaxListingBytes int64
	// MaxUploadsPerRepository and MaxUploadsPerClient cap open upload
	// sessions in one repository and of one client (ClientID); beyond,
	// starting a session answers 429 TOOMANYREQUESTS. 0 takes the default;
	// a negative value disables the cap.
	MaxUploadsPerRepository int
	MaxUploadsPerClient     int
	// Access decides what each request may do; nil allows everything (no
	// authentication).
	Access Access
	// ClientID names who counts as one client for the upload cap; nil: the
	// host of r.RemoteAddr.
	ClientID func(*http.Request) string
	// Observers are told of every manifest stored, after it is committed
	// (for example to decode Flatpak icons once, at push time). They run in
	// the request, in order; they must not fail the push, so they return
	// nothing and log their own problems.
	Observers []ManifestObserver
}

// ManifestObserver is told of each manifest the registry stores.
type ManifestObserver interface {
	ManifestStored(ctx context.Context, m *meta.Manifest, tags []string)
}

// ManifestPreparer is an optional interface of a ManifestObserver: it
// may add to a manifest what the store records with it (decoded icons),
// before the manifest is stored, in the request. It must not fail the
// push: it logs its own problems and leaves the manifest as it was.
type ManifestPreparer interface {
	PrepareManifest(ctx context.Context, m *meta.Manifest)
}

// ManifestDeleteObserver is an optional interface of a ManifestObserver:
// it is also told of each manifest deleted by digest (after the delete
// is committed; a tag deleted alone leaves its manifest).
type ManifestDeleteObserver interface {
	ManifestDeleted(ctx context.Context, repo string, d digest.Digest)
}

// Defaults for Options.
const (
	DefaultMaxManifestBytes = 4 << 20
	DefaultMaxBlobBytes     = 64 << 30
	DefaultMaxConfigBytes   = oci.MaxConfigBytes
	DefaultPageMax          = 1000
	DefaultBodyIdleTimeout  = 2 * time.Minute
	DefaultMaxListingBytes  = 4 << 20
	// DefaultMaxUploadsPerRepository and DefaultMaxUploadsPerClient bound
	// open sessions (each may live for the uploads' expiry, 24 h by
	// default).
	DefaultMaxUploadsPerRepository = 1000
	DefaultMaxUploadsPerClient     = 100
)

func (o Options) withDefaults() Options {
	if o.MaxManifestBytes <= 0 {
		o.MaxManifestBytes = DefaultMaxManifestBytes
	}
	if o.MaxBlobBytes <= 0 {
		o.MaxBlobBytes = DefaultMaxBlobBytes
	}
	if o.MaxConfigBytes <= 0 {
		o.MaxConfigBytes = DefaultMaxConfigBytes
	}
	if o.PageMax <= 0 {
		o.PageMax = DefaultPageMax
	}
	if o.BodyIdleTimeout <= 0 {
		o.BodyIdleTimeout = DefaultBodyIdleTimeout
	}
	if o.MaxListingBytes <= 0 {
		o.MaxListingBytes = DefaultMaxListingBytes
	}
	if o.MaxUploadsPerRepository == 0 {
		o.MaxUploadsPerRepository = DefaultMaxUploadsPerRepository
	}
	if o.MaxUploadsPerClient == 0 {
		o.MaxUploadsPerClient = DefaultMaxUploadsPerClient
	}
	return o
}

// Registry serves the /v2/ API. It is safe for concurrent use.
type Registry struct {
	blobs Blobs
	meta  Meta
	// now is the metadata store's clock (meta.Clock): the times it
	// stores, and the cutoffs compared with them.
	now   func() time.Time
	opts  Options
	log   *slog.Logger
	locks keyedMutex
}

// New returns a registry over the given stores.
func New(blobs Blobs, md Meta, opts Options, logger *slog.Logger) *Registry {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Registry{blobs: blobs, meta: md, now: meta.ClockOf(md), opts: opts.withDefaults(), log: logger}
}

// RequestIDHeader is the response header the server's middleware sets; the
// registry quotes it in the body of internal errors.
const RequestIDHeader = "X-Request-Id"

// ServeHTTP routes a /v2/ request to its handler and writes any error the
// handler returns in the spec's format. No handler writes an error itself.
func (reg *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	err := reg.route(w, r)
	if err == nil {
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		reg.log.DebugContext(r.Context(), "client went away", "method", r.Method, "path", r.URL.Path, "err", err)
		return
	}
	status, internal := writeError(w, r, err, w.Header().Get(RequestIDHeader))
	if internal {
		reg.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	} else {
		reg.log.DebugContext(r.Context(), "request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
}

func (reg *Registry) route(w http.ResponseWriter, r *http.Request) error {
	if err := checkCanonical(r.URL.Path); err != nil {
		return err
	}
	rt := parseRoute(r.URL.Path)
	if rt.kind == kindNone {
		rt = guessRoute(r.URL.Path)
	}
	switch rt.kind {
	case kindNone:
		return errorf(CodeNameUnknown, http.StatusNotFound, nil, "no such endpoint")
	case kindBase:
		if !isGet(r) {
			return methodNotAllowed(w, "GET, HEAD")
		}
		if a := reg.opts.Access; a != nil && !a.Authenticated(r) {
			// Clients learn the authentication scheme here.
			return reg.deny(w, r, "")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte("{}"))
		}
		return nil
	case kindCatalog:
		if !isGet(r) {
			return methodNotAllowed(w, "GET")
		}
		if a := reg.opts.Access; a != nil && !a.CatalogAllowed(r) {
			return reg.deny(w, r, CatalogScope)
		}
		return reg.catalog(w, r)
	}
	if err := oci.ValidateName(rt.name); err != nil {
		return err
	}
	// Authorise before anything is looked up, so that a refusal is the
	// same whether the repository, manifest, blob or upload exists.
	if action := requiredAction(rt.kind, r.Method); action != "" && !reg.allowed(r, rt.name, action) {
		scope := scopeFor(rt.name, action)
		// A mount asks for pull on its source as well (as distribution
		// does), so a token-flow client gets one token for both.
		if from := r.URL.Query().Get("from"); rt.kind == kindUploadStart && r.URL.Query().Get("mount") != "" && oci.ValidateName(from) == nil {
			scope += " " + scopeFor(from, ActionPull)
		}
		return reg.deny(w, r, scope)
	}
	switch rt.kind {
	case kindTags:
		if !isGet(r) {
			return methodNotAllowed(w, "GET")
		}
		return reg.tagsList(w, r, rt.name)
	case kindManifest:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return reg.getManifest(w, r, rt.name, rt.ref)
		case http.MethodPut:
			return reg.putManifest(w, r, rt.name, rt.ref)
		case http.MethodDelete:
			return reg.deleteManifest(w, r, rt.name, rt.ref)
		}
		return methodNotAllowed(w, "GET, HEAD, PUT, DELETE")
	case kindBlob:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return reg.getBlob(w, r, rt.name, rt.ref)
		case http.MethodDelete:
			return reg.deleteBlob(w, r, rt.name, rt.ref)
		}
		return methodNotAllowed(w, "GET, HEAD, DELETE")
	case kindUploadStart:
		if r.Method != http.MethodPost {
			return methodNotAllowed(w, "POST")
		}
		return reg.startUpload(w, r, rt.name)
	case kindUpload:
		switch r.Method {
		case http.MethodGet:
			return reg.uploadStatus(w, r, rt.name, rt.upload)
		case http.MethodPatch:
			return reg.patchUpload(w, r, rt.name, rt.upload)
		case http.MethodPut:
			return reg.putUpload(w, r, rt.name, rt.upload)
		case http.MethodDelete:
			return reg.cancelUpload(w, r, rt.name, rt.upload)
		}
		return methodNotAllowed(w, "GET, PATCH, PUT, DELETE")
	case kindReferrers:
		if !isGet(r) {
			return methodNotAllowed(w, "GET")
		}
		return reg.referrers(w, r, rt.name, rt.ref)
	}
	return errorf(CodeNameUnknown, http.StatusNotFound, nil, "no such endpoint")
}

func isGet(r *http.Request) bool { return r.Method == http.MethodGet || r.Method == http.MethodHead }

func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return errorf(CodeUnsupported, http.StatusMethodNotAllowed, nil, "method not allowed; allowed: %s", allow)
}

// pageSize reads n: absent means the maximum; larger values are capped so
// that no allocation is sized by the client (V1).
func (reg *Registry) pageSize(r *http.Request) (int, error) {
	s := r.URL.Query().Get("n")
	if s == "" {
		return reg.opts.PageMax, nil
	}
	n, err := strconv.Atoi(s)
	if errors.Is(err, strconv.ErrRange) && s[0] != '-' {
		n, err = reg.opts.PageMax, nil // a positive integer past int: capped as any large n
	}
	if err != nil || n < 0 {
		return 0, errorf(CodeUnsupported, http.StatusBadRequest, err, "n must be a non-negative integer")
	}
	return min(n, reg.opts.PageMax), nil
}

// keyedMutex serialises work on one key (an upload id) without a global
// lock. Waiting gives up when the waiter's context ends, so a client that
// stalls mid-body holds only its own session, and those queued behind it
// leave when their clients do.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	sem  chan struct{} // one token: held while locked
	refs int
}

func (k *keyedMutex) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*keyedEntry)
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{sem: make(chan struct{}, 1)}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case e.sem <- struct{}{}:
		return func() { <-e.sem; release() }, nil
	case <-ctx.Done():
		release()
		return nil, fmt.Errorf("waiting for upload %s: %w", key, ctx.Err())
	}
}

// parseDigest parses a digest from a request: anything but a well-formed
// sha256 or sha512 digest is DIGEST_INVALID (400), unsupported algorithms
// included.
func parseDigest(s string) (digest.Digest, error) {
	d, err := oci.ParseDigest(s)
	if err != nil {
		return "", errorf(CodeDigestInvalid, 0, err, "%v", err)
	}
	return d, nil
}

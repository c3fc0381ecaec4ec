package flatpak

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// Meta is what the Flatpak handlers read from the metadata store. The
// contract (filter keys, order, snapshot, generation) is
// meta/metatest.IndexStore's.
type Meta interface {
	// IndexGeneration is a counter that increases with every change to
	// manifests, tags or manifest icons that can alter the answers of
	// scope (meta.IndexFilter.Scope).
	IndexGeneration(ctx context.Context, scope meta.IndexScope) (int64, error)
	// IndexImages calls fn for each image the registry index lists, with
	// the index list holding it (nil for a tagged image), the tags that
	// list it and the icons it shows by size, all from one snapshot; it
	// returns the generation of that snapshot.
	IndexImages(ctx context.Context, filter meta.IndexFilter, fn func(img, list *meta.Manifest, tags []string, icons map[int]digest.Digest) error) (int64, error)
	// ManifestIcons returns the icons each of the manifests shows, by
	// size (absent: none).
	ManifestIcons(ctx context.Context, keys ...meta.ManifestKey) (map[meta.ManifestKey]map[int]digest.Digest, error)
	// Icon returns an icon's PNG bytes; ok is false if it is not stored.
	Icon(ctx context.Context, d digest.Digest) (png []byte, ok bool, err error)
	// IconRepositories calls fn with each repository holding a manifest
	// that shows the icon d, until fn returns false (contract:
	// meta/metatest.RunIconAccess).
	IconRepositories(ctx context.Context, d digest.Digest, fn func(repo string) bool) error
	ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error)
	GetManifest(ctx context.Context, repo string, d digest.Digest) (*meta.Manifest, error)
}

// Access filters what a request may see (V14: every side door applies the
// registry's pull filter).
type Access interface {
	// View returns a key naming the set of repositories r may pull
	// (requests with equal keys see the same answers, so caches can be
	// keyed by it) and the predicate.
	View(r *http.Request) (key string, canPull func(repo string) bool)
}

// Options configure the Flatpak remote. Zero values take the defaults.
type Options struct {
	// PublicURL is the absolute URL clients reach Berth at
	// ("https://registry.example.com", or with a path prefix). The index's
	// Registry field, icon URLs and the .flatpakrepo/.flatpakref files are
	// built from it. Empty: the index names the registry and icons with
	// URLs relative to the index URL ("/", "/icons/…"), which the client
	// resolves (flatpak-oci-protocol.md §1, §2.3), and the files use
	// BaseURL.
	PublicURL string
	// TrustForwardedHeaders takes the scheme and host of the files' URLs
	// from X-Forwarded-Proto and X-Forwarded-Host (see BaseURL) when
	// PublicURL is empty.
	TrustForwardedHeaders bool
	// Title names the remote in the .flatpakrepo file; default "Berth".
	Title string
	// RemoteName is the remote name the .flatpakref files suggest;
	// default "berth".
	RemoteName string
	// CacheBytes bounds the memory that cached, gzipped index answers use
	// (their bytes and their keys); default 64 MiB. Negative disables the
	// cache.
	CacheBytes int64
	// MaxIndexBytes caps the (uncompressed) JSON of one index answer;
	// default 4 MiB. The protocol has no paging: an answer that would be
	// larger lists the first images that fit (see the package doc).
	MaxIndexBytes int64
	// Access filters the index, icons and .flatpakref files by what the
	// requester may pull; nil: everything is visible. The .flatpakrepo
	// file holds no repository data and is always served.
	Access Access
}

// Defaults for Options.
const (
	DefaultTitle         = "Berth"
	DefaultRemoteName    = "berth"
	DefaultCacheBytes    = 64 << 20
	DefaultMaxIndexBytes = 4 << 20
)

// Paths the Handler serves (RepoFilePath and FlatpakrefPath for the web
// catalogue's links).
const (
	IndexStaticPath  = "/index/static"
	IndexDynamicPath = "/index/dynamic"
	RepoFilePath     = "/berth.flatpakrepo"
	iconsPrefix      = "/icons/"
	flatpakrefPrefix = "/flatpakref/"
	flatpakrefSuffix = ".flatpakref"
)

// FlatpakrefPath is the path of the .flatpakref file that installs the
// app (or runtime) tagged tag in repository repo.
func FlatpakrefPath(repo, tag string) string {
	return flatpakrefPrefix + repo + "/" + tag + flatpakrefSuffix
}

// Handler serves the Flatpak remote: the registry index, icons, the
// .flatpakrepo file and .flatpakref files, all anonymously. It is safe for
// concurrent use.
type Handler struct {
	md    Meta
	opts  Options
	log   *slog.Logger
	cache *indexCache
	apps  appCache // parsed AppStream data for .flatpakref files
	// truncatedGen is the last index generation at which a truncated
	// answer was logged (one warning per generation).
	truncatedGen atomic.Int64
	mux          *http.ServeMux // routes, for ServeHTTP
}

// New returns a Handler over md. A nil logger discards.
func New(md Meta, opts Options, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	if opts.Title == "" {
		opts.Title = DefaultTitle
	}
	if opts.RemoteName == "" {
		opts.RemoteName = DefaultRemoteName
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	if opts.MaxIndexBytes <= 0 {
		opts.MaxIndexBytes = DefaultMaxIndexBytes
	}
	h := &Handler{md: md, opts: opts, log: logger, cache: newIndexCache(max(opts.CacheBytes, 0), runtime.GOMAXPROCS(0))}
	h.mux = http.NewServeMux()
	h.Register(h.mux)
	return h
}

// routes are the Handler's patterns (Go's method patterns: a GET pattern
// also answers HEAD, and a request of another method gets 405 with an
// Allow header from the mux) and their handlers.
func (h *Handler) routes() map[string]http.HandlerFunc {
	nosniff := func(f http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Content-Type-Options", "nosniff")
			f(w, r)
		}
	}
	return map[string]http.HandlerFunc{
		"GET " + IndexStaticPath:  nosniff(func(w http.ResponseWriter, r *http.Request) { h.serveIndex(w, r, false) }),
		"GET " + IndexDynamicPath: nosniff(func(w http.ResponseWriter, r *http.Request) { h.serveIndex(w, r, true) }),
		"GET " + RepoFilePath:     nosniff(h.serveRepoFile),
		"GET " + iconsPrefix: nosniff(func(w http.ResponseWriter, r *http.Request) {
			h.serveIcon(w, r, strings.TrimPrefix(r.URL.Path, iconsPrefix))
		}),
		"GET " + flatpakrefPrefix: nosniff(func(w http.ResponseWriter, r *http.Request) {
			h.serveFlatpakref(w, r, strings.TrimPrefix(r.URL.Path, flatpakrefPrefix))
		}),
	}
}

// Register adds the Handler's routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	for pattern, f := range h.routes() {
		mux.Handle(pattern, f)
	}
}

// RegisterIcons adds only the icons' route to mux: with the Flatpak
// remote off, the web catalogue still shows the icons recorded at push.
func (h *Handler) RegisterIcons(mux *http.ServeMux) {
	pattern := "GET " + iconsPrefix
	mux.Handle(pattern, h.routes()[pattern])
}

// ServeHTTP serves the Handler's routes alone (as Register would on an
// empty mux).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

// view is what r may see: the key of its view ("" without Access) and
// the predicate (nil: everything).
func (h *Handler) view(r *http.Request) (string, func(repo string) bool) {
	if h.opts.Access == nil {
		return "", nil
	}
	return h.opts.Access.View(r)
}

// baseURL is the absolute URL of Berth for r (BaseURL), for the files.
func (h *Handler) baseURL(r *http.Request) string {
	return BaseURL(r, h.opts.PublicURL, h.opts.TrustForwardedHeaders)
}

// internalError logs err and answers 500 without detail.
func (h *Handler) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	if r.Context().Err() != nil {
		h.log.DebugContext(r.Context(), "client went away", "path", r.URL.Path, "err", err)
		return
	}
	h.log.ErrorContext(r.Context(), what, "path", r.URL.Path, "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

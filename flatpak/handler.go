package flatpak

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// Meta is what the Flatpak handlers read from the metadata store. The
// contract (filter keys, order, snapshot, generation) is
// meta/metatest.IndexStore's.
type Meta interface {
	// IndexGeneration is a counter that increases with every change to
	// manifests, tags or manifest icons.
	IndexGeneration(ctx context.Context) (int64, error)
	// IndexImages calls fn for each image the registry index lists, with
	// the index list holding it (nil for a tagged image), the tags that
	// list it and the icons it shows by size, all from one snapshot; it
	// returns the generation of that snapshot.
	IndexImages(ctx context.Context, filter map[string][]string, fn func(img, list *meta.Manifest, tags []string, icons map[int]digest.Digest) error) (int64, error)
	// ManifestIcons returns the icons each of the manifests shows, by
	// size (absent: none).
	ManifestIcons(ctx context.Context, keys ...meta.ManifestKey) (map[meta.ManifestKey]map[int]digest.Digest, error)
	// Icon returns an icon's PNG bytes; ok is false if it is not stored.
	Icon(ctx context.Context, d digest.Digest) (png []byte, ok bool, err error)
	ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error)
	GetManifest(ctx context.Context, repo string, d digest.Digest) (*meta.Manifest, error)
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
	// CacheBytes bounds the memory that cached, gzipped index answers use;
	// default 64 MiB. Negative disables the cache.
	CacheBytes int64
}

// Defaults for Options.
const (
	DefaultTitle      = "Berth"
	DefaultRemoteName = "berth"
	DefaultCacheBytes = 64 << 20
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
	return &Handler{md: md, opts: opts, log: logger, cache: newIndexCache(max(opts.CacheBytes, 0), runtime.GOMAXPROCS(0))}
}

// Register adds the Handler's routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	for _, p := range []string{IndexStaticPath, IndexDynamicPath, RepoFilePath, iconsPrefix, flatpakrefPrefix} {
		mux.Handle(p, h)
	}
}

// ServeHTTP routes a request to its handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	p := r.URL.Path
	switch {
	case p == IndexStaticPath:
		h.serveIndex(w, r, false)
	case p == IndexDynamicPath:
		h.serveIndex(w, r, true)
	case p == RepoFilePath:
		h.serveRepoFile(w, r)
	case strings.HasPrefix(p, iconsPrefix):
		h.serveIcon(w, r, strings.TrimPrefix(p, iconsPrefix))
	case strings.HasPrefix(p, flatpakrefPrefix):
		h.serveFlatpakref(w, r, strings.TrimPrefix(p, flatpakrefPrefix))
	default:
		http.NotFound(w, r)
	}
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

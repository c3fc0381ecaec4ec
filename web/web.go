package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/flatpak"
	"github.com/berth-dev/berth/oci"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Blobs opens committed blobs by digest; the catalogue reads image configs
// through it for their history. blob.Provider satisfies it.
type Blobs interface {
	Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, error)
}

// Options configure the catalogue. Zero values take the defaults.
type Options struct {
	// Title names the site in page headers; default "Berth".
	Title string
	// PublicURL is the registry's address as clients reach it
	// ("https://registry.example.com"), used in pull and install
	// commands. Empty: the request's scheme and Host (flatpak.BaseURL).
	PublicURL string
	// TrustForwardedHeaders takes the scheme and host of those commands
	// from X-Forwarded-Proto and X-Forwarded-Host when PublicURL is empty
	// (flatpak.BaseURL).
	TrustForwardedHeaders bool
	// FlatpakDisabled hides every link to the Flatpak remote (the
	// .flatpakrepo and .flatpakref files, install commands): the server
	// does not serve it.
	FlatpakDisabled bool
	// RemoteName is the name the install commands give the Flatpak remote;
	// default "berth".
	RemoteName string
	// CanRead reports whether the request may see a repository (V14: the
	// catalogue applies the same filter as the registry). nil: every
	// repository is readable.
	CanRead func(r *http.Request, repo string) bool
	// MaxAnswerBytes caps the JSON of one /api/v1/search answer; a page
	// whose results would pass it lists the first that fit and says
	// "truncated": true. Default 4 MiB (the server passes
	// limits.max_listing_bytes).
	MaxAnswerBytes int64
	// MaxConfigBytes bounds the config blob read for an image's history;
	// larger configs are shown without history. Default oci.MaxConfigBytes
	// (8 MiB, as the registry reads at push time).
	MaxConfigBytes int64
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// DefaultMaxAnswerBytes is Options.MaxAnswerBytes' default.
const DefaultMaxAnswerBytes = 4 << 20

// Handler serves the catalogue pages, its assets and the /api/v1/ search
// API. It is safe for concurrent use.
type Handler struct {
	cat    Catalog
	blobs  Blobs
	opts   Options
	log    *slog.Logger
	pages  map[string]*template.Template
	assets map[string]asset

	snap    atomic.Pointer[snapshot]
	loading sync.Mutex // one rebuild at a time
	facts   factCache
	history historyCache
	// installCache keeps the last read of install counts (installs.go).
	installCache installCache
	mux          *http.ServeMux // routes
	// unreadRetry is how long a snapshot with apps whose labels could not
	// be read is served unchanged before a request refreshes it anyway.
	unreadRetry time.Duration
	// homeMemos are the last renderings of the home page's first pages
	// (pages.go); renders counts template executions (for tests).
	homeMemos [homeMemoPages]atomic.Pointer[homeMemo]
	renders   atomic.Int64
}

// unreadRetry is Handler.unreadRetry's value: a snapshot whose labels
// could not be read (a blob store hiccup) is mended within this long
// while nothing is pushed, for one regrouping of those apps.
const unreadRetry = 10 * time.Second

// New returns the catalogue over cat. blobs may be nil (no image
// history). A nil logger discards.
func New(cat Catalog, blobs Blobs, opts Options, logger *slog.Logger) (*Handler, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Title == "" {
		opts.Title = "Berth"
	}
	if opts.RemoteName == "" {
		opts.RemoteName = "berth"
	}
	if opts.MaxConfigBytes <= 0 {
		opts.MaxConfigBytes = oci.MaxConfigBytes
	}
	if opts.MaxAnswerBytes <= 0 {
		opts.MaxAnswerBytes = DefaultMaxAnswerBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PublicURL != "" {
		u, err := url.Parse(opts.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("web: public URL %q is not an http(s) URL", opts.PublicURL)
		}
		opts.PublicURL = strings.TrimSuffix(u.String(), "/")
	}
	h := &Handler{cat: cat, blobs: blobs, opts: opts, log: logger, unreadRetry: unreadRetry}
	var err error
	if h.assets, err = loadAssets(); err != nil {
		return nil, err
	}
	if h.pages, err = h.parseTemplates(); err != nil {
		return nil, err
	}
	h.mux = h.routes()
	return h, nil
}

// contentSecurityPolicy allows the page's own scripts, styles and images
// (and data: images) only: no inline script or style (V20).
const contentSecurityPolicy = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// ServeHTTP sets the security headers every answer carries and routes
// the request (routes): GET and HEAD only, anything else is 405 (the
// catalogue is read-only, V21).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

// routes maps the catalogue's paths with Go's method patterns (a GET
// pattern also answers HEAD). What none takes goes to a fallback, which
// answers 405 with "Allow: GET, HEAD" to other methods and 404 to the
// rest: the API's in JSON (apiFallback), the pages' as pages
// (pageFallback).
func (h *Handler) routes() *http.ServeMux {
	mux := http.NewServeMux()
	// page runs serve on the catalogue as of now.
	page := func(serve func(w http.ResponseWriter, r *http.Request, s *snapshot)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if s, ok := h.snapshotFor(w, r); ok {
				serve(w, r, s)
			}
		}
	}
	under := func(prefix string, serve func(w http.ResponseWriter, r *http.Request, s *snapshot, rest string)) http.HandlerFunc {
		return page(func(w http.ResponseWriter, r *http.Request, s *snapshot) {
			serve(w, r, s, strings.TrimPrefix(r.URL.Path, prefix))
		})
	}
	mux.HandleFunc("GET /static/", func(w http.ResponseWriter, r *http.Request) {
		h.serveAsset(w, r, strings.TrimPrefix(r.URL.Path, "/static/"))
	})
	mux.HandleFunc("GET /api/v1/search", page(h.apiSearch))
	mux.HandleFunc("/api/v1/", h.apiFallback)
	mux.HandleFunc("/api/v1", h.apiFallback)
	mux.HandleFunc("GET /{$}", page(h.home))
	mux.HandleFunc("GET /search", page(h.searchPage))
	mux.HandleFunc("GET /apps/", under("/apps/", h.appPage))
	mux.HandleFunc("GET /repositories", page(h.reposPage))
	mux.HandleFunc("GET /repositories/{$}", page(h.reposPage))
	mux.HandleFunc("GET /repositories/", under("/repositories/", h.repoRoute))
	// The subtrees' bare roots stay 404s (the mux would redirect them to
	// "/apps/" and "/static/", which are 404s too).
	mux.HandleFunc("GET /apps", h.pageFallback)
	mux.HandleFunc("GET /static", h.pageFallback)
	mux.HandleFunc("/", h.pageFallback)
	return mux
}

// pageFallback answers what no page route takes: 405 for a method other
// than GET and HEAD (every path is read-only), else 404.
func (h *Handler) pageFallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed: the catalogue is read-only", http.StatusMethodNotAllowed)
		return
	}
	h.notFound(w, r, "There is no page at this address.")
}

// apiFallback answers what no API route takes: 405 (JSON) for a method
// other than GET and HEAD, else 404 (JSON).
func (h *Handler) apiFallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.jsonError(w, http.StatusMethodNotAllowed, "method not allowed: the API is read-only")
		return
	}
	h.jsonError(w, http.StatusNotFound, "no such endpoint; see /api/v1/search")
}

// snapshotFor returns the catalogue as of now for a request, or answers
// the error (JSON for the API, a page otherwise) and returns false.
func (h *Handler) snapshotFor(w http.ResponseWriter, r *http.Request) (*snapshot, bool) {
	s, err := h.snapshot(r.Context())
	if err == nil {
		return s, true
	}
	if r.Context().Err() != nil {
		return nil, false
	}
	p := r.URL.Path
	h.log.ErrorContext(r.Context(), "catalogue: reading metadata", "path", p, "err", err)
	rid := w.Header().Get("X-Request-Id")
	if strings.HasPrefix(p, "/api/v1/") {
		h.jsonError(w, http.StatusInternalServerError, "internal error; request id "+rid)
	} else {
		h.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "The catalogue could not be read. The request id is "+rid+".")
	}
	return nil, false
}

// snapshot returns the catalogue as of now: the cached one if
// CatalogVersion has not changed (and, if some app's labels could not be
// read, for unreadRetry at most), else a new one (one rebuild at a time;
// concurrent requests wait for it), re-reading only the repositories the
// events since the cached one name when it can (refresh).
//
// A request is answered from a snapshot that shows every change committed
// before it asked. While changes keep coming, the requests that waited
// for a rebuild take the one that started after they asked (it shows
// their changes), instead of each starting another rebuild in turn.
func (h *Handler) snapshot(ctx context.Context) (*snapshot, error) {
	asked := time.Now()
	v, err := h.cat.CatalogVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("catalog version: %w", err)
	}
	// current: s is at version v, and has no unread labels left to retry.
	current := func(s *snapshot) bool {
		return s != nil && s.version == v && (len(s.unread) == 0 || time.Since(s.readAt) < h.unreadRetry)
	}
	if s := h.snap.Load(); current(s) {
		return s, nil
	}
	h.loading.Lock()
	defer h.loading.Unlock()
	if s := h.snap.Load(); current(s) || (s != nil && s.readAt.After(asked)) {
		return s, nil
	}
	// The version to build at is read now, before any row: the snapshot
	// shows at least everything committed before readAt.
	readAt := time.Now()
	if v, err = h.cat.CatalogVersion(ctx); err != nil {
		return nil, fmt.Errorf("catalog version: %w", err)
	}
	if s := h.snap.Load(); current(s) {
		return s, nil
	}
	// The rebuild serves every waiting request: a client going away does
	// not cancel it.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	start := time.Now()
	// A change re-reads only the repositories it touched (their events);
	// anything else re-reads everything.
	s, incremental, err := h.refresh(lctx, h.snap.Load(), v)
	if err != nil {
		return nil, fmt.Errorf("refresh catalogue: %w", err)
	}
	if !incremental {
		if s, err = h.load(lctx, v); err != nil {
			return nil, fmt.Errorf("load catalogue: %w", err)
		}
	}
	s.readAt = readAt
	h.snap.Store(s)
	h.log.DebugContext(ctx, "catalogue: rebuilt", "incremental", incremental, "repositories", len(s.repos), "apps", len(s.apps), "duration", time.Since(start))
	return s, nil
}

// current is the last snapshot built, or nil.
func (h *Handler) current() *snapshot { return h.snap.Load() }

func (h *Handler) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.log.ErrorContext(r.Context(), "catalogue: encoding JSON", "err", err)
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	b = append(b, '\n')
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

func (h *Handler) jsonError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// asset is one embedded static file.
type asset struct {
	data        []byte
	contentType string
	hash        string // first 12 hex digits of its sha256
}

func loadAssets() (map[string]asset, error) {
	out := map[string]asset{}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		ct := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".svg":
			ct = "image/svg+xml"
		}
		out[strings.TrimPrefix(p, "static/")] = asset{data: data, contentType: ct, hash: hex.EncodeToString(sum[:6])}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: assets: %w", err)
	}
	return out, nil
}

// assetURL is an asset's URL with its content hash, which makes it
// cacheable for good.
func (h *Handler) assetURL(name string) string {
	a, ok := h.assets[name]
	if !ok {
		panic("web: no asset " + name) // a template names a missing file: caught by the tests
	}
	return "/static/" + name + "?v=" + a.hash
}

func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := h.assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("ETag", `"`+a.hash+`"`)
	if r.URL.Query().Get("v") == a.hash {
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hd.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.data))
}

// baseURL is the registry's URL as the client sees it: the same as the
// Flatpak remote's files give.
func (h *Handler) baseURL(r *http.Request) string {
	return flatpak.BaseURL(r, h.opts.PublicURL, h.opts.TrustForwardedHeaders)
}

// registryHost is the host[:port][/path] part of pull references.
func (h *Handler) registryHost(r *http.Request) string {
	u := h.baseURL(r)
	u = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	return u
}

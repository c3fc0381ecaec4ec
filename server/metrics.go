package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/gc"
	"github.com/berth-dev/berth/meta"
)

// NotifyMetrics is what webhook delivery reports, per endpoint. endpoint
// is the endpoint's configured name (notifications.endpoints[].name),
// never its URL: a URL may carry credentials, and label values are
// public to whoever may scrape.
type NotifyMetrics interface {
	// Delivered: one event accepted by the receiver (2xx).
	Delivered(endpoint string)
	// Failed: one delivery attempt failed (it may be retried).
	Failed(endpoint string)
	// Dropped: one event left the backlog undelivered (backlog full).
	Dropped(endpoint string)
}

// Metrics holds Berth's Prometheus metrics, in a registry of their own
// (not the client library's global one, so two Servers in one process —
// tests — do not collide). Every label value comes from a small fixed set
// (route patterns, methods, status codes, gc results) or from the
// operator's configuration (webhook endpoint names): never from a
// request's repository name, tag or digest, so the series stay few and
// /metrics tells a scraper nothing about what is stored.
type Metrics struct {
	reg *prometheus.Registry

	requests *prometheus.CounterVec   // route, method, code
	latency  *prometheus.HistogramVec // route, method
	bytesIn  *prometheus.CounterVec   // route
	bytesOut *prometheus.CounterVec   // route
	inflight prometheus.Gauge

	gcRuns      *prometheus.CounterVec // result
	gcFreed     prometheus.Counter
	gcManifests prometheus.Counter
	gcBlobs     prometheus.Counter

	webhookDelivered *prometheus.CounterVec // endpoint
	webhookFailed    *prometheus.CounterVec
	webhookDropped   *prometheus.CounterVec

	deltas       *prometheus.CounterVec // result
	deltaSeconds prometheus.Histogram
	installs     *prometheus.CounterVec // kind, arch
}

var _ NotifyMetrics = (*Metrics)(nil)

// BuildInfo names the running binary in berth_build_info.
type BuildInfo struct {
	Version, Commit, GoVersion string
}

// buildOverride is the build identity the command knows better than the
// toolchain's stamp (a release build's ldflags); see SetBuildInfo.
var buildOverride atomic.Pointer[BuildInfo]

// SetBuildInfo records the binary's build identity as its command knows
// it (cmd/berth: -ldflags over the VCS stamp), for berth_build_info, so
// /metrics and `berth version` name the same build. Empty fields keep
// what ReadBuildInfo finds.
func SetBuildInfo(b BuildInfo) { buildOverride.Store(&b) }

// ReadBuildInfo is the binary's version (its main module version, or
// "(devel)") and VCS revision as the Go toolchain stamped them, unless
// SetBuildInfo named them.
func ReadBuildInfo() BuildInfo {
	b := readToolchainBuildInfo()
	if o := buildOverride.Load(); o != nil {
		if o.Version != "" {
			b.Version = o.Version
		}
		if o.Commit != "" {
			b.Commit = o.Commit
		}
	}
	return b
}

func readToolchainBuildInfo() BuildInfo {
	b := BuildInfo{Version: "(devel)", Commit: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if v := bi.Main.Version; v != "" {
		b.Version = v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			b.Commit = s.Value
		}
	}
	return b
}

// statsTTL is how long the store totals are reused before they are read
// again, and statsTimeout bounds one read: scrapes every few seconds from
// several Prometheus servers cost one count a while, and a slow store
// slows no scrape by more than the timeout.
const (
	statsTTL     = 15 * time.Second
	statsTimeout = 2 * time.Second
)

// NewMetrics registers Berth's metrics, the store totals read from stats
// (nil: none), berth_build_info, and the Go runtime and process
// collectors. A nil logger discards.
func NewMetrics(stats meta.StatsReader, bi BuildInfo, logger *slog.Logger) *Metrics {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "berth_http_request_duration_seconds",
			Help:    "Time from a request's headers to its last response byte, by route pattern and method.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"route", "method"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_http_request_body_bytes_total",
			Help: "Bytes of request bodies read (uploads, manifests), by route pattern.",
		}, []string{"route"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_http_response_body_bytes_total",
			Help: "Bytes of response bodies written (pulls, listings), by route pattern.",
		}, []string{"route"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_http_requests_in_flight",
			Help: "Requests being served.",
		}),
		gcRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_gc_runs_total",
			Help: "Garbage collection runs (not dry runs), by result (success, failure).",
		}, []string{"result"}),
		gcFreed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_gc_freed_bytes_total",
			Help: "Bytes of blob files garbage collection deleted.",
		}),
		gcManifests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_gc_deleted_manifests_total",
			Help: "Manifests garbage collection deleted (untagged retention).",
		}),
		gcBlobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_gc_deleted_blobs_total",
			Help: "Blobs garbage collection deleted (rows with their bytes, and orphan files).",
		}),
		webhookDelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_webhook_deliveries_total",
			Help: "Events delivered to a webhook endpoint, by endpoint name.",
		}, []string{"endpoint"}),
		webhookFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_webhook_failures_total",
			Help: "Failed webhook delivery attempts (retried later), by endpoint name.",
		}, []string{"endpoint"}),
		webhookDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_webhook_dropped_total",
			Help: "Events dropped undelivered because an endpoint's backlog was full, by endpoint name.",
		}, []string{"endpoint"}),
		deltas: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_flatpak_deltas_total",
			Help: "Flatpak deltas made, by result: ready (verified, published), rejected (not worth it or not diffable), failed (generation or verification failed; never published).",
		}, []string{"result"}),
		installs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_flatpak_installs_total",
			Help: "Flatpak installs and updates counted from the client's downloads, by kind (install, update) and architecture (no repository or app names).",
		}, []string{"kind", "arch"}),
		deltaSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "berth_flatpak_delta_duration_seconds",
			Help:    "Time to make, verify and store one Flatpak delta.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
	}
	f(m.requests)
	f(m.latency)
	f(m.bytesIn)
	f(m.bytesOut)
	f(m.inflight)
	f(m.gcRuns)
	f(m.gcFreed)
	f(m.gcManifests)
	f(m.gcBlobs)
	f(m.webhookDelivered)
	f(m.webhookFailed)
	f(m.webhookDropped)
	f(m.deltas)
	f(m.deltaSeconds)
	f(m.installs)
	for _, r := range []string{"ready", "rejected", "failed"} {
		m.deltas.WithLabelValues(r)
	}
	// Both results exist from the start, so rate() and alerts on
	// failures see a 0 rather than no series.
	m.gcRuns.WithLabelValues("success")
	m.gcRuns.WithLabelValues("failure")
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "berth_build_info",
		Help:        "Always 1; the labels name the running build.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "commit": bi.Commit, "go_version": bi.GoVersion},
	}, func() float64 { return 1 }))
	if stats != nil {
		f(newStatsCollector(stats, statsTTL, statsTimeout, logger))
	}
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A collector that fails (the store totals) leaves the others.
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// Delivered implements NotifyMetrics.
func (m *Metrics) Delivered(endpoint string) { m.webhookDelivered.WithLabelValues(endpoint).Inc() }

// Failed implements NotifyMetrics.
func (m *Metrics) Failed(endpoint string) { m.webhookFailed.WithLabelValues(endpoint).Inc() }

// Dropped implements NotifyMetrics.
func (m *Metrics) Dropped(endpoint string) { m.webhookDropped.WithLabelValues(endpoint).Inc() }

// GCRun counts a garbage collection run (see gc.Collector.OnRun).
func (m *Metrics) GCRun(r gc.Report, err error) {
	if err != nil {
		m.gcRuns.WithLabelValues("failure").Inc()
	} else {
		m.gcRuns.WithLabelValues("success").Inc()
	}
	m.gcFreed.Add(float64(max(r.BytesFreed, 0)))
	m.gcManifests.Add(float64(max(r.Manifests, 0)))
	m.gcBlobs.Add(float64(max(r.Blobs+r.OrphanFiles, 0)))
}

// DeltaMade counts a delta job's result (see delta.Options.OnResult).
func (m *Metrics) DeltaMade(state meta.DeltaState, took time.Duration) {
	m.deltas.WithLabelValues(string(state)).Inc()
	m.deltaSeconds.Observe(took.Seconds())
}

// InstallCounted counts installs or updates (see
// flatpak.NewInstallCounter).
func (m *Metrics) InstallCounted(kind, arch string, n int64) {
	switch arch {
	case "x86_64", "aarch64", "i386", "arm", "ppc64le", "s390x", "riscv64", "loongarch64":
	default:
		arch = "other" // a pusher names the arch: keep the series few
	}
	m.installs.WithLabelValues(kind, arch).Add(float64(n))
}

// noMetrics is NotifyMetrics when metrics are off.
type noMetrics struct{}

func (noMetrics) Delivered(string) {}
func (noMetrics) Failed(string)    {}
func (noMetrics) Dropped(string)   {}

// instrument counts every request next serves: by route pattern, method
// and status, its duration, and the bytes of its body read and of its
// response written. It goes outside everything else (see New), so
// refusals by auth and transport hardening count too.
func (m *Metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, method := routePattern(r.URL.Path), methodLabel(r.Method)
		start := time.Now()
		m.inflight.Inc()
		mw := &responseWriter{ResponseWriter: w, status: http.StatusOK}
		var body *countingBody
		if r.Body != nil && r.Body != http.NoBody {
			body = &countingBody{rc: r.Body}
			r2 := *r
			r2.Body = body
			r = &r2
		}
		defer func() {
			// Deferred: a handler that aborts (http.ErrAbortHandler)
			// still counts, as what it had written by then.
			m.inflight.Dec()
			m.requests.WithLabelValues(route, method, codeLabel(mw.status)).Inc()
			m.latency.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
			if body != nil {
				m.bytesIn.WithLabelValues(route).Add(float64(body.n))
			}
			m.bytesOut.WithLabelValues(route).Add(float64(mw.bytes))
		}()
		next.ServeHTTP(mw, r)
	})
}

// countingBody counts the bytes read from a request body.
type countingBody struct {
	rc io.ReadCloser
	n  int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

// methodLabel keeps the method label to the methods Berth serves.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// codeLabel is the status code, or "other" outside 100–599.
func codeLabel(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code)
}

// Route patterns of the /v2/ API, as the distribution spec names them.
const (
	routeV2Base      = "/v2/"
	routeCatalog     = "/v2/_catalog"
	routeManifest    = "/v2/<name>/manifests/<reference>"
	routeBlob        = "/v2/<name>/blobs/<digest>"
	routeUploadStart = "/v2/<name>/blobs/uploads/"
	routeUpload      = "/v2/<name>/blobs/uploads/<reference>"
	routeTags        = "/v2/<name>/tags/list"
	routeReferrers   = "/v2/<name>/referrers/<digest>"
	routeOther       = "other"
)

// v2Route is a /v2/ path split as the registry splits it (from the
// right: repository names contain slashes). name and ref are the
// request's own strings, for the audit log only: never a label.
type v2Route struct {
	pattern   string
	name, ref string
}

// parseV2 splits a /v2/ path; pattern is "" if p is not under /v2/.
func parseV2(p string) v2Route {
	if p == "/v2" || p == "/v2/" {
		return v2Route{pattern: routeV2Base}
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return v2Route{}
	}
	if rest == "_catalog" {
		return v2Route{pattern: routeCatalog}
	}
	elem := strings.Split(rest, "/")
	n := len(elem)
	if n < 3 {
		return v2Route{pattern: routeOther}
	}
	name := func(k int) string { return strings.Join(elem[:n-k], "/") }
	last, prev := elem[n-1], elem[n-2]
	switch {
	case n >= 4 && elem[n-3] == "blobs" && prev == "uploads":
		if last == "" {
			return v2Route{pattern: routeUploadStart, name: name(3)}
		}
		return v2Route{pattern: routeUpload, name: name(3), ref: last}
	case prev == "manifests":
		return v2Route{pattern: routeManifest, name: name(2), ref: last}
	case prev == "blobs":
		return v2Route{pattern: routeBlob, name: name(2), ref: last}
	case prev == "tags" && last == "list":
		return v2Route{pattern: routeTags, name: name(2)}
	case prev == "referrers":
		return v2Route{pattern: routeReferrers, name: name(2), ref: last}
	}
	return v2Route{pattern: routeOther}
}

// routePattern names the endpoint p belongs to, from a fixed set: the
// label of every request metric.
func routePattern(p string) string {
	if v := parseV2(p); v.pattern != "" {
		return v.pattern
	}
	switch p {
	case "/", "/search", "/repositories", "/api/v1/search", tokenPath,
		"/index/static", "/index/dynamic", "/berth.flatpakrepo",
		metricsPath, livezPath, readyzPath:
		return p
	case "/repositories/":
		return "/repositories"
	}
	for _, prefix := range []string{"/apps/", "/repositories/", "/static/", "/icons/", "/flatpakref/"} {
		if strings.HasPrefix(p, prefix) {
			return prefix + "<path>"
		}
	}
	return routeOther
}

// Paths of the operational endpoints.
const (
	metricsPath = "/metrics"
	livezPath   = "/livez"
	readyzPath  = "/readyz"
)

// metricsAccess guards /metrics on the main listener: with authentication
// on, metrics.access decides who may read it ("anonymous": anyone;
// "authenticated": any user; "admin": auth.admins). Authentication off:
// open. The answer to who may not is the registry's (401 with a
// challenge to anonymous, 403 to a user).
func metricsAccess(next http.Handler, access string, svc *auth.Service) http.Handler {
	if svc == nil || access == "anonymous" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := auth.FromContext(r.Context())
		switch {
		case p.Anonymous():
			w.Header().Set("WWW-Authenticate", svc.Challenge(r, "", false))
			writeJSONError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
			return
		case access == "admin" && !svc.IsAdmin(p):
			writeJSONError(w, http.StatusForbidden, "DENIED", "/metrics is for administrators (metrics.access: admin)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// statsCollector reports the store totals, read at most every ttl and
// within timeout; between reads, and when a read fails, the last totals
// read (none until one succeeds).
type statsCollector struct {
	src          meta.StatsReader
	ttl, timeout time.Duration
	log          *slog.Logger

	mu   sync.Mutex
	at   time.Time
	last meta.Stats
	ok   bool

	repos, manifests, blobs, blobBytes, uploads *prometheus.Desc
}

func newStatsCollector(src meta.StatsReader, ttl, timeout time.Duration, logger *slog.Logger) *statsCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &statsCollector{
		src: src, ttl: ttl, timeout: timeout, log: logger,
		repos:     d("berth_stored_repositories", "Repositories in the metadata store (read at most every 15s)."),
		manifests: d("berth_stored_manifests", "Manifests stored, counted once per repository (read at most every 15s)."),
		blobs:     d("berth_stored_blobs", "Blobs stored, each once however many repositories link it (read at most every 15s)."),
		blobBytes: d("berth_stored_blob_bytes", "Bytes of the blobs stored (read at most every 15s)."),
		uploads:   d("berth_uploads_in_progress", "Open upload sessions (read at most every 15s)."),
	}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.repos, c.manifests, c.blobs, c.blobBytes, c.uploads} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.stats()
	if !ok {
		return
	}
	g := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	g(c.repos, st.Repositories)
	g(c.manifests, st.Manifests)
	g(c.blobs, st.Blobs)
	g(c.blobBytes, st.BlobBytes)
	g(c.uploads, st.Uploads)
}

// stats returns the cached totals, reading them first if they are older
// than ttl. Concurrent scrapes wait for one read.
func (c *statsCollector) stats() (meta.Stats, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok && time.Since(c.at) < c.ttl {
		return c.last, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.src.Stats(ctx)
	if err != nil {
		c.log.Warn("metrics: reading the store totals failed; reporting the last ones read", "err", err)
		return c.last, c.ok
	}
	c.last, c.at, c.ok = st, time.Now(), true
	return st, true
}

// NotifyMetrics is where webhook delivery reports (a no-op when metrics
// are off).
func (s *Server) NotifyMetrics() NotifyMetrics {
	if s.metrics == nil {
		return noMetrics{}
	}
	return s.metrics
}

// serveOps serves /livez, /readyz and (metrics.enabled) /metrics on the
// separate metrics.addr listener, unauthenticated: it is meant for an
// address only the cluster's probes and Prometheus reach. The returned
// func stops it.
func (s *Server) serveOps(ctx context.Context) (stop func(), err error) {
	ln, err := net.Listen("tcp", s.cfg.Metrics.Addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(livezPath, livez)
	mux.Handle(readyzPath, s.ready)
	if s.metrics != nil {
		mux.Handle(metricsPath, s.metrics.Handler())
	}
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: s.cfg.HTTP.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.HTTP.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	s.log.Info("metrics and probes listening", "addr", ln.Addr().String(), "metrics", s.metrics != nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener stopped", "err", err)
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.HTTP.ShutdownTimeout)
		defer cancel()
		_ = hs.Shutdown(sctx)
		<-done
	}, nil
}

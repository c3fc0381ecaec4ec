// Package server wires the configuration to the stores and the HTTP
// handlers, adds the middleware every request goes through (request id,
// access log, panic recovery) and runs the http.Server with a graceful
// shutdown. It holds no registry logic of its own.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/blob/fs"
	"github.com/berth-dev/berth/blob/s3"
	"github.com/berth-dev/berth/config"
	"github.com/berth-dev/berth/delta"
	"github.com/berth-dev/berth/flatpak"
	"github.com/berth-dev/berth/fsck"
	"github.com/berth-dev/berth/gc"
	"github.com/berth-dev/berth/internal/reqid"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/postgres"
	"github.com/berth-dev/berth/meta/sqlite"
	"github.com/berth-dev/berth/notify"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/web"
)

// Server is a configured Berth: its stores, its handler and its
// background workers.
type Server struct {
	cfg    config.Config
	log    *slog.Logger
	meta   Meta
	shared bool // the metadata is shared with other replicas
	// unlockServing gives up the shared store's serve lock (nil: none).
	unlockServing func()
	gc            *gc.Collector
	icons         *flatpak.IconRecorder
	auth          *auth.Service // nil when authentication is off
	handler       http.Handler
	// inflight counts requests being served (see withMiddleware).
	inflight sync.WaitGroup
	// metrics is nil when metrics.enabled is false; ready answers
	// /readyz (both also on the metrics.addr listener: serveOps).
	metrics *Metrics
	ready   *readiness
	// notify delivers the events outbox to the webhook endpoints (and
	// prunes it, endpoints or not).
	notify *notify.Notifier
	// deltas makes Flatpak delta updates; nil when they are off.
	deltas *delta.Manager
	// installs counts Flatpak installs and updates; nil when the remote
	// is off.
	installs *flatpak.InstallCounter
}

// Meta is the metadata store Berth runs on: the slices of it that its
// packages consume (server/contract_test.go checks that each is part of
// metatest.Backend, the contract every backend passes), and Close.
type Meta interface {
	registry.Meta
	gc.Meta
	fsck.Meta
	fsck.DeltaMeta
	flatpak.Meta
	flatpak.IconStore
	flatpak.MissingIcons
	flatpak.InstallStore
	web.Catalog
	web.DeltaSizes
	web.InstallStats
	notify.Store
	delta.Store
	meta.StatsReader
	// Now is the store's clock, which the times it stores come from; gc,
	// the registry, notify and deltas take their cutoffs from it.
	meta.Clock
	// ReleaseDeltaLeases frees the delta jobs a crashed process held.
	ReleaseDeltaLeases(ctx context.Context) error
	Close() error
}

// Stores are the stores cfg names, for the server and for the commands
// that work on them directly (gc, fsck, deltas). The caller closes them.
type Stores struct {
	Blobs blob.Store
	Meta  Meta
	// Shared: the metadata is in a database other processes (replicas)
	// use too, so nothing about it is this process's alone.
	Shared bool
}

// Locker is a shared metadata store's own lock between the servers on
// it and a repair that needs none to run (the local serve.lock cannot see
// other replicas).
type Locker interface {
	// HoldServing holds the lock shared while a server runs.
	HoldServing(ctx context.Context) (release func(), err error)
	// TryExclusive takes it if no server holds it.
	TryExclusive(ctx context.Context) (release func(), ok bool, err error)
}

// OpenStores opens (creating if needed) the stores named by cfg: blobs
// in S3 when storage.s3.endpoint is set, else in storage.dir; metadata in
// PostgreSQL when metadata.postgres.dsn is set, else SQLite in
// storage.dir.
func OpenStores(ctx context.Context, cfg config.Config, logger *slog.Logger) (*Stores, error) {
	dir := cfg.Storage.Dir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("storage dir: %w", err)
	}
	var blobs blob.Store
	if c := cfg.Storage.S3; c.Endpoint != "" {
		s, err := s3.New(ctx, s3.Options{
			Endpoint: c.Endpoint, Region: c.Region, Bucket: c.Bucket, Prefix: c.Prefix,
			AccessKey: c.AccessKey, SecretKey: c.SecretKey, PathStyle: c.PathStyle, PartSize: c.PartSize,
		}, logger.With("component", "blob"))
		if err != nil {
			return nil, fmt.Errorf("open blob store: %w", err)
		}
		blobs = s
	} else {
		s, err := fs.New(dir, logger.With("component", "blob"))
		if err != nil {
			return nil, fmt.Errorf("open blob store in %s: %w", dir, err)
		}
		blobs = s
	}
	if pg := cfg.Metadata.Postgres; pg.DSN != "" {
		md, err := postgres.Open(ctx, pg.DSN, postgres.Options{MaxConns: pg.MaxConns}, logger.With("component", "meta"))
		if err != nil {
			return nil, fmt.Errorf("open metadata in PostgreSQL: %w", err)
		}
		return &Stores{Blobs: blobs, Meta: md, Shared: true}, nil
	}
	md, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"), logger.With("component", "meta"))
	if err != nil {
		return nil, fmt.Errorf("open metadata in %s: %w", dir, err)
	}
	return &Stores{Blobs: blobs, Meta: md}, nil
}

// Close closes the stores.
func (s *Stores) Close() error { return s.Meta.Close() }

// GCPolicy is the garbage-collection policy cfg sets.
func GCPolicy(cfg config.Config) gc.Policy {
	return gc.Policy{
		Grace:             cfg.GC.Grace,
		UntaggedAfter:     cfg.GC.UntaggedAfter,
		UploadExpireAfter: cfg.Uploads.ExpireAfter,
		ClaimLease:        cfg.GC.ClaimLease,
	}
}

// FlatpakOptions are the Flatpak remote's options cfg sets.
func FlatpakOptions(cfg config.Config) flatpak.Options {
	cacheBytes := cfg.Flatpak.IndexCacheBytes
	if cacheBytes == 0 {
		cacheBytes = -1 // config: 0 disables; flatpak.Options: 0 is the default
	}
	return flatpak.Options{
		PublicURL:             cfg.Flatpak.PublicURL,
		TrustForwardedHeaders: cfg.HTTP.TrustForwardedHeaders,
		Title:                 cfg.Flatpak.Title,
		RemoteName:            cfg.Flatpak.RemoteName,
		CacheBytes:            cacheBytes,
		MaxIndexBytes:         cfg.Limits.MaxListingBytes,
	}
}

// DeltaOptions are the delta worker's options cfg sets.
func DeltaOptions(cfg config.Config) delta.Options {
	d := cfg.Flatpak.Deltas
	window := d.Window
	if window == 0 {
		window = -1 // config: 0 is no limit; delta.Options: 0 is the default
	}
	retire := d.RetireAfter
	if retire == 0 {
		retire = -1
	}
	return delta.Options{
		Versions:      d.Versions,
		Window:        window,
		MaxLayerBytes: d.MaxLayerBytes,
		MaxRatio:      d.MaxRatio,
		Concurrency:   d.Concurrency,
		RetireAfter:   retire,
		TempDir:       DeltaTempDir(cfg),
	}
}

// DeltaTempDir is where deltas are made: in the storage directory (on
// the disk the layers are on, not a tmpfs), emptied when serve starts.
func DeltaTempDir(cfg config.Config) string {
	return filepath.Join(cfg.Storage.Dir, "tmp", "deltas")
}

// iconBackfillLimit bounds the manifests one start looks at for icons
// that were never recorded.
const iconBackfillLimit = 100_000

// New opens the stores named by cfg and builds the handler. The caller
// closes the Server.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (*Server, error) {
	// Log lines written with a request's context name its request id.
	logger = slog.New(reqid.Handler(logger.Handler()))
	st, err := OpenStores(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	blobs, md := st.Blobs, st.Meta
	var unlockServing func()
	if l, ok := md.(Locker); ok && st.Shared {
		if unlockServing, err = l.HoldServing(ctx); err != nil {
			st.Close()
			return nil, err
		}
	}
	collector := gc.New(md, blobs, GCPolicy(cfg), logger.With("component", "gc"))
	// Tombstones a crashed gc left refuse pushes of their blobs: finish
	// them before serving (errors are logged; the next run retries).
	_, _ = collector.FinishTombstones(ctx)
	var metrics *Metrics
	if cfg.Metrics.Enabled {
		metrics = NewMetrics(md, ReadBuildInfo(), logger.With("component", "metrics"))
		collector.OnRun(metrics.GCRun)
	}
	ready := newReadiness(logger.With("component", "health"), metaCheck(md), blobCheck(blobs))
	// Webhooks: each endpoint's cursor is read (or made) now, so every
	// event written from here on is delivered.
	notifier, err := notify.New(ctx, md, notifyOptions(cfg, metrics), logger.With("component", "notify"))
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("notifications: %w", err)
	}
	auditLog := logger.With("component", "audit")
	// Icons are recorded at every push, the Flatpak remote on or off: the
	// catalogue shows them, and a remote turned on later has them.
	icons := flatpak.NewIconRecorder(md, logger.With("component", "flatpak"))
	// Access control: one auth service decides for the registry and every
	// side door (Flatpak index, icons, catalogue, search).
	var (
		authSvc   *auth.Service
		regAccess registry.Access
		fpAccess  flatpak.Access
		webFilter func(*http.Request, string) bool
	)
	if cfg.Auth.Enabled() {
		authSvc, err = auth.New(authConfig(cfg), logger.With("component", "auth"))
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("auth: %w", err)
		}
		regAccess, fpAccess, webFilter = registryAccess{authSvc}, flatpakAccess{authSvc}, canPull(authSvc)
	} else {
		logger.Warn("authentication is off: anyone who can reach this address may pull, push and delete " +
			"(set auth.htpasswd and auth.access to control access; see docs/security.md)")
	}
	observers := []registry.ManifestObserver{icons}
	var deltas *delta.Manager
	if cfg.Flatpak.Enabled && cfg.Flatpak.Deltas.Enabled {
		dopts := DeltaOptions(cfg)
		if metrics != nil {
			dopts.OnResult = metrics.DeltaMade
		}
		deltas = delta.New(md, blobs, dopts, logger.With("component", "deltas"))
		observers = append(observers, deltas)
		// A gc run may have deleted the images some deltas lead from or to.
		collector.OnRun(func(gc.Report, error) { deltas.Signal() })
	}
	reg := registry.New(blobs, md, registry.Options{
		MaxManifestBytes: cfg.Limits.MaxManifestBytes,
		MaxBlobBytes:     cfg.Limits.MaxBlobBytes,
		PageMax:          cfg.Limits.PageMax,
		SparseManifests:  cfg.Validation.SparseManifests,
		// Half the grace period: a link that gc could sweep soon is
		// renewed when a pusher HEADs its blob (gc.grace 0 disables it).
		LinkRefreshAfter:        cfg.GC.Grace / 2,
		Observers:               observers,
		Access:                  regAccess,
		ClientID:                clientID,
		MaxListingBytes:         cfg.Limits.MaxListingBytes,
		MaxUploadsPerRepository: capOption(cfg.Uploads.MaxPerRepository),
		MaxUploadsPerClient:     capOption(cfg.Uploads.MaxPerClient),
		BodyIdleTimeout:         cfg.Uploads.IdleTimeout,
		RedirectTTL:             cfg.Storage.S3.Redirect,
	}, logger.With("component", "registry"))
	mux := http.NewServeMux()
	var v2 http.Handler = reg
	var installs *flatpak.InstallCounter
	if cfg.Flatpak.Enabled {
		var onCount func(kind, arch string, n int64)
		if metrics != nil {
			onCount = metrics.InstallCounted
		}
		installs = flatpak.NewInstallCounter(md, onCount, logger.With("component", "installs"))
		v2 = withInstallCounts(reg, installs)
	}
	mux.Handle("/v2/", v2)
	mux.Handle("/v2", reg)
	fo := FlatpakOptions(cfg)
	fo.Access = fpAccess
	fh := flatpak.New(md, fo, logger.With("component", "flatpak"))
	if !cfg.Flatpak.Enabled {
		// The catalogue shows the icons recorded at push (see icons
		// above): they are served with the remote off too.
		fh.RegisterIcons(mux)
	} else {
		fh.Register(mux)
		if cfg.Flatpak.PublicURL == "" {
			logger.Warn("flatpak.public_url is not set: the Flatpak index names the registry and icons relative to its own URL, "+
				"but .flatpakrepo/.flatpakref files and install commands take the scheme and host from each request "+
				"(behind a TLS-terminating proxy: set flatpak.public_url, or http.trust_forwarded_headers if the proxy sets X-Forwarded-Proto/-Host)",
				"trust_forwarded_headers", cfg.HTTP.TrustForwardedHeaders)
		}
	}
	catalogue, err := web.New(md, blobs, web.Options{
		Title:                 cfg.Flatpak.Title,
		PublicURL:             cfg.Flatpak.PublicURL,
		TrustForwardedHeaders: cfg.HTTP.TrustForwardedHeaders,
		RemoteName:            cfg.Flatpak.RemoteName,
		FlatpakDisabled:       !cfg.Flatpak.Enabled,
		CanRead:               webFilter,
		MaxAnswerBytes:        cfg.Limits.MaxListingBytes,
	}, logger.With("component", "web"))
	if err != nil {
		st.Close()
		return nil, err
	}
	mux.Handle("/", catalogue)
	mux.Handle("/api/v1/", catalogue)
	// The probes answer anyone; /metrics stays here unless metrics.addr
	// moves it to its own listener, and obeys metrics.access.
	mux.HandleFunc(livezPath, livez)
	mux.Handle(readyzPath, ready)
	if metrics != nil && cfg.Metrics.Addr == "" {
		mux.Handle(metricsPath, metricsAccess(metrics.Handler(), cfg.Metrics.Access, authSvc))
	}
	// The rate limit runs after authentication (a user is limited by
	// name, wherever it connects from) and before the handlers.
	var h http.Handler = withRateLimit(withAudit(mux, auditLog), cfg.Limits.RateLimit)
	if authSvc != nil {
		if cfg.Auth.Token.Enabled {
			mux.Handle(tokenPath, authSvc.TokenHandler())
		}
		h = withAuth(withActor(h), authSvc, auditLog, failedLogins(cfg.Limits.RateLimit))
	}
	srv := &Server{cfg: cfg, log: logger, meta: md, shared: st.Shared, unlockServing: unlockServing, gc: collector, icons: icons, auth: authSvc, metrics: metrics, ready: ready, notify: notifier, deltas: deltas, installs: installs}
	srv.handler = withMiddleware(hardenTransport(h, cfg.HTTP, logger), logger, &srv.inflight)
	if metrics != nil {
		srv.handler = metrics.instrument(srv.handler)
	}
	return srv, nil
}

// Handler is the server's whole HTTP handler (for tests).
func (s *Server) Handler() http.Handler { return s.handler }

// backfillIcons records the icons of manifests pushed while nothing
// recorded them (an older Berth, a failed recording): one bounded pass.
func (s *Server) backfillIcons(ctx context.Context) {
	n, err := s.icons.Backfill(ctx, s.meta, iconBackfillLimit)
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.Warn("icon backfill", "looked_at", n, "err", err)
	case n > 0:
		s.log.Info("icon backfill: recorded the icons of older pushes", "looked_at", n)
	}
}

// installFlushInterval is how often install counts are written.
const installFlushInterval = 5 * time.Second

// withInstallCounts tells c of the flatpak client's GETs under /v2/ and
// how they were answered; every other request passes untouched.
func withInstallCounts(next http.Handler, c *flatpak.InstallCounter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !flatpak.IsClient(r) {
			next.ServeHTTP(w, r)
			return
		}
		rw := &responseWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rw, r)
		c.Observe(r, rw.status, clientID(r))
	})
}

// runDeltas starts the delta worker. berth serve holds the storage
// directory's lock, so no other process makes deltas on this store: the
// leases a previous process left and its temporary files are let go at
// once, and an interrupted job starts again now.
func (s *Server) runDeltas(ctx context.Context) {
	dir := DeltaTempDir(s.cfg)
	if err := os.RemoveAll(dir); err != nil {
		s.log.Warn("deltas: clearing the temporary directory", "dir", dir, "err", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		s.log.Error("deltas: temporary directory; no deltas are made", "dir", dir, "err", err)
		return
	}
	// Leases of a crashed run are released at once, unless the store is
	// shared: other replicas' leases are live, and a dead replica's
	// expire on their own.
	if !s.shared {
		if err := s.meta.ReleaseDeltaLeases(ctx); err != nil {
			s.log.Warn("deltas: releasing old leases", "err", err)
		}
	}
	s.deltas.Run(ctx)
}

// Serve answers requests on ln until ctx ends, then stops accepting, waits
// for in-flight requests (up to the configured timeout), stops the
// background workers (the icon backfill, once; garbage collection every
// gc.interval, unless 0) and returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// HTTPS when a certificate is configured (reloaded by ReloadTLS and
	// when its files change); HTTP/1.x connections are framed by Berth so
	// hardenTransport can refuse ambiguous framing (see transport.go).
	if s.cfg.HTTP.TLS.Enabled() {
		tcfg, rl, err := serverTLSConfig(s.cfg.HTTP.TLS, s.log)
		if err != nil {
			ln.Close()
			return fmt.Errorf("tls: %w", err)
		}
		tlsReloaders.Store(s, rl)
		defer tlsReloaders.Delete(s)
		ln = newTLSListener(ln, tcfg, s.cfg.HTTP.ReadHeaderTimeout, s.log)
		defer ln.Close()
	} else {
		ln = framingListener{ln}
	}
	wctx, stopWorkers := context.WithCancel(ctx)
	var workers sync.WaitGroup
	workers.Go(func() { s.backfillIcons(wctx) })
	workers.Go(func() { s.notify.Run(wctx) })
	if s.deltas != nil {
		workers.Go(func() { s.runDeltas(wctx) })
	}
	if s.installs != nil {
		// The last flush runs when the workers stop, after the requests
		// in flight ended.
		workers.Go(func() { s.installs.Run(wctx, installFlushInterval) })
	}
	workers.Go(func() {
		if iv := s.cfg.GC.Interval; iv > 0 {
			s.gc.RunEvery(wctx, iv)
		}
	})
	defer func() {
		stopWorkers()
		workers.Wait()
	}()
	if s.cfg.Metrics.Addr != "" {
		stopOps, err := s.serveOps(ctx)
		if err != nil {
			ln.Close()
			return err
		}
		defer stopOps()
	}
	hs := &http.Server{
		Handler:           s.handler, // hardenTransport is inside (see New)
		ReadHeaderTimeout: s.cfg.HTTP.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.HTTP.IdleTimeout,
		// 431 past it (Go's default is 1 MiB, and HTTP/2 advertises it
		// as SETTINGS_MAX_HEADER_LIST_SIZE).
		MaxHeaderBytes: s.cfg.HTTP.MaxHeaderBytes,
		// "OPTIONS *" reaches the handler (and its 400): every request
		// net/http reads must, for the framing check to stay in step.
		DisableGeneralOptionsHandler: true,
		ConnContext:                  connContext,
		HTTP2:                        http2Config(s.cfg.HTTP),
		ErrorLog:                     slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:                  func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "timeout", s.cfg.HTTP.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		// Requests still running past the timeout: close their
		// connections (their contexts end) and give them a moment to
		// return before the caller closes the stores under them.
		_ = hs.Close()
		done := make(chan struct{})
		go func() { s.inflight.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(s.cfg.HTTP.ShutdownTimeout):
			s.log.Error("requests still running after shutdown; closing the stores anyway")
		}
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// Close closes the stores.
func (s *Server) Close() error {
	if s.auth != nil {
		_ = s.auth.Close()
	}
	if s.unlockServing != nil {
		s.unlockServing()
	}
	return s.meta.Close()
}

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

	"github.com/berth-dev/berth/blob/fs"
	"github.com/berth-dev/berth/config"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/sqlite"
	"github.com/berth-dev/berth/registry"
)

// Server is a configured Berth: its stores and its handler.
type Server struct {
	cfg     config.Config
	log     *slog.Logger
	meta    meta.Store
	handler http.Handler
}

// New opens the stores named by cfg and builds the handler. The caller
// closes the Server.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (*Server, error) {
	dir := cfg.Storage.Dir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("storage dir: %w", err)
	}
	blobs, err := fs.New(dir, logger.With("component", "blob"))
	if err != nil {
		return nil, fmt.Errorf("open blob store in %s: %w", dir, err)
	}
	md, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"), logger.With("component", "meta"))
	if err != nil {
		return nil, fmt.Errorf("open metadata in %s: %w", dir, err)
	}
	reg := registry.New(blobs, md, registry.Options{
		MaxManifestBytes: cfg.Limits.MaxManifestBytes,
		MaxBlobBytes:     cfg.Limits.MaxBlobBytes,
		PageMax:          cfg.Limits.PageMax,
		SparseManifests:  cfg.Validation.SparseManifests,
	}, logger.With("component", "registry"))
	mux := http.NewServeMux()
	mux.Handle("/v2/", reg)
	mux.Handle("/v2", reg)
	return &Server{cfg: cfg, log: logger, meta: md, handler: withMiddleware(mux, logger)}, nil
}

// Handler is the server's whole HTTP handler (for tests).
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers requests on ln until ctx ends, then stops accepting, waits
// for in-flight requests (up to the configured timeout) and returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.HTTP.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.HTTP.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
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
		_ = hs.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// Close closes the stores.
func (s *Server) Close() error {
	return s.meta.Close()
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/config"
	"github.com/berth-dev/berth/internal/gctune"
	"github.com/berth-dev/berth/server"
)

// Main runs the CLI with os.Args and returns the exit status.
func Main() int {
	root := newRoot(os.Stdout, os.Stderr)
	root.SetArgs(os.Args[1:])
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "berth:", err)
		return 1
	}
	return 0
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "berth",
		Short:         "An OCI registry for server images and Flatpak desktop apps",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newServe(), newGC(), newFsck(), newDeltas(), newVersion(), newConfig())
	setVersionFlag(root) // berth --version, as berth version (version.go)
	return root
}

func newServe() *cobra.Command {
	var cfgFile, addr, data, addrFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the registry (default: :5000, data in ./berth-data)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, warnings, err := config.Load(cfgFile, os.Environ())
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("addr") {
				cfg.HTTP.Addr = addr
			}
			if cmd.Flags().Changed("data") {
				cfg.Storage.Dir = data
			}
			logger := newLogger(cmd.ErrOrStderr(), cfg.Log)
			if len(warnings.UnknownEnv) > 0 {
				// Names only: a value may be a secret.
				logger.Warn("ignoring BERTH_* environment variables that are not configuration keys "+
					"(Kubernetes sets BERTH_PORT, BERTH_SERVICE_HOST… for a Service named berth; see docs/configuration.md)",
					"vars", strings.Join(warnings.UnknownEnv, ","))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// After the first signal starts the graceful shutdown, a
			// second one kills the process (the default action).
			context.AfterFunc(ctx, stop)
			return serve(ctx, cfg, addrFile, logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "YAML configuration file")
	f.StringVar(&addr, "addr", "", "listen address, host:port (overrides http.addr)")
	f.StringVar(&data, "data", "", "data directory (overrides storage.dir)")
	f.StringVar(&addrFile, "addr-file", "", "write the address actually listened on to this file")
	return cmd
}

// gcPercent is the collector setting serve applies: limits.gc_percent
// and limits.gc_min_heap_bytes, unless GOGC is set in the environment
// (the runtime has applied it).
func gcPercent(cfg config.Config, getenv func(string) string) (pct int, floor uint64, ok bool) {
	if getenv("GOGC") != "" {
		return 0, 0, false
	}
	return cfg.Limits.GCPercent, uint64(cfg.Limits.GCMinHeapBytes), true
}

func serve(ctx context.Context, cfg config.Config, addrFile string, logger *slog.Logger) error {
	// One server per data directory (maintenance.go): a second one fails
	// here, before it touches the stores.
	release, err := lockData(cfg.Storage.Dir)
	if errors.Is(err, errDataInUse) {
		return fmt.Errorf("storage dir %s is already used by another berth serve (or a berth fsck --repair): %w", cfg.Storage.Dir, err)
	}
	if err != nil {
		return err
	}
	defer release()
	if pct, floor, ok := gcPercent(cfg, os.Getenv); ok {
		defer gctune.Start(pct, floor)()
		logger.Debug("garbage collector", "gc_percent", pct, "gc_min_heap_bytes", floor)
	}
	srv, err := server.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := listen(cfg.HTTP.Addr, logger) // or systemd's socket (systemd.go)
	if err != nil {
		return err
	}
	if addrFile != "" {
		if err := writeFileAtomic(addrFile, ln.Addr().String()+"\n"); err != nil {
			ln.Close()
			return fmt.Errorf("addr-file: %w", err)
		}
	}
	logger.Info("berth serving", "addr", ln.Addr().String(), "data", cfg.Storage.Dir, "version", buildVersion(), "tls", cfg.HTTP.TLS.Enabled())
	stopHUP := reloadOnHUP(ctx, srv, cfg, logger)
	defer stopHUP()
	stopNotify := notifySystemd(ctx, srv, ln, logger) // READY=1, watchdog, STOPPING=1
	defer stopNotify()
	return srv.Serve(ctx, ln)
}

// reloadOnHUP reloads the TLS certificate on each SIGHUP until ctx ends or
// the returned func is called. SIGHUP is caught even without TLS, so an
// operator's reflex `kill -HUP` never stops the registry.
func reloadOnHUP(ctx context.Context, srv *server.Server, cfg config.Config, logger *slog.Logger) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-hup:
				if !cfg.HTTP.TLS.Enabled() {
					logger.Info("SIGHUP: nothing to reload (no TLS certificate configured)")
					continue
				}
				if err := srv.ReloadTLS(); err != nil {
					logger.Error("SIGHUP: TLS certificate not reloaded; serving the previous one", "err", err)
					continue
				}
				logger.Info("SIGHUP: TLS certificate reloaded")
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

func writeFileAtomic(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".addr-*")
	if err != nil {
		return err
	}
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func newConfig() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Configuration tools"}
	var file string
	check := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a configuration file and the BERTH_* environment",
		Long: "Validate a configuration file (FILE or --config) and the BERTH_* environment over it. " +
			"Each error names the file, line and column of its key, or the variable that set it; " +
			"BERTH_* variables that are not configuration keys are listed as warnings.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if file != "" && file != args[0] {
					return errors.New("config check: give the file once (FILE or --config)")
				}
				file = args[0]
			}
			_, warnings, err := config.Load(file, os.Environ())
			for _, m := range warnings.Messages() {
				fmt.Fprintln(cmd.OutOrStdout(), "warning: environment", m)
			}
			if err != nil {
				return errors.New("configuration is invalid:\n" + err.Error())
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration is valid")
			return nil
		},
	}
	check.Flags().StringVar(&file, "config", "", "YAML configuration file")
	cmd.AddCommand(check)
	return cmd
}

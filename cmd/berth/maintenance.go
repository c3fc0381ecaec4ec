package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/config"
	"github.com/berth-dev/berth/delta"
	"github.com/berth-dev/berth/fsck"
	"github.com/berth-dev/berth/gc"
	"github.com/berth-dev/berth/server"
)

// loadFor loads the configuration for a maintenance command, with --data
// overriding storage.dir.
func loadFor(cmd *cobra.Command, cfgFile, data string) (config.Config, error) {
	cfg, warnings, err := config.Load(cfgFile, os.Environ())
	if err != nil {
		return cfg, err
	}
	for _, m := range warnings.Messages() {
		fmt.Fprintln(cmd.ErrOrStderr(), "berth: warning: environment", m)
	}
	if cmd.Flags().Changed("data") {
		cfg.Storage.Dir = data
	}
	if _, err := os.Stat(cfg.Storage.Dir); err != nil {
		return cfg, fmt.Errorf("storage dir: %w", err)
	}
	return cfg, nil
}

// serveLockName is the file in storage.dir that berth serve holds an
// exclusive flock(2) on while it runs, so that fsck --repair can tell
// whether anything may be pushing: the kernel releases the lock when the
// process exits, however it exits (kill -9 included), so a stale lock
// cannot outlive a crash.
const serveLockName = "serve.lock"

// errDataInUse: another process holds serve.lock.
var errDataInUse = errors.New("data directory in use")

// lockData takes the exclusive lock on dir/serve.lock without waiting, or
// returns an error matching errDataInUse. release closes the file, which
// releases the lock.
func lockData(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("storage dir: %w", err)
	}
	path := filepath.Join(dir, serveLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked by another process", errDataInUse, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// f stays reachable through the closure: were it collected, its
	// finalizer would close it and drop the lock.
	return func() { f.Close() }, nil
}

func newGC() *cobra.Command {
	var cfgFile, data string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Collect garbage once (safe while berth serve runs)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadFor(cmd, cfgFile, data)
			if err != nil {
				return err
			}
			logger := newLogger(cmd.ErrOrStderr(), cfg.Log)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			st, err := server.OpenStores(ctx, cfg, logger)
			if err != nil {
				return err
			}
			defer st.Close()
			c := gc.New(st.Meta, st.Blobs, server.GCPolicy(cfg), logger.With("component", "gc"))
			if dryRun && st.Shared {
				return errors.New("gc --dry-run works on a copy of SQLite metadata; with metadata.postgres it is not available")
			}
			// The dry run is the real run on a copy of the metadata.
			c.SetSnapshot(sqliteSnapshot(metaPath(cfg)))
			r, err := c.Run(ctx, dryRun)
			printGC(cmd.OutOrStdout(), r)
			if err != nil || dryRun || !cfg.Flatpak.Enabled || !cfg.Flatpak.Deltas.Enabled {
				return err
			}
			// Deltas from or to the images gc deleted: berth serve's
			// worker drops them within a minute (the replicas', with a
			// shared store); without one, now.
			if st.Shared {
				return nil
			}
			release, lerr := lockData(cfg.Storage.Dir)
			if lerr != nil {
				return nil
			}
			defer release()
			m := delta.New(st.Meta, st.Blobs, server.DeltaOptions(cfg), logger.With("component", "deltas"))
			if err := m.Reconcile(ctx); err != nil {
				return fmt.Errorf("deltas after gc: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "YAML configuration file")
	f.StringVar(&data, "data", "", "data directory (overrides storage.dir)")
	f.BoolVar(&dryRun, "dry-run", false, "report what would be deleted, delete nothing")
	return cmd
}

func printGC(w io.Writer, r gc.Report) {
	verb := "deleted"
	if r.DryRun {
		verb = "would delete"
	}
	fmt.Fprintf(w, "gc %s: %d manifests, %d blob links, %d blobs, %d orphan files (%d bytes); %d expired uploads, %d upload files without a session; in %s\n",
		verb, r.Manifests, r.Links, r.Blobs, r.OrphanFiles, r.BytesFreed, r.Uploads, r.UploadData, r.Duration.Round(time.Millisecond))
	if r.Failed > 0 {
		fmt.Fprintf(w, "gc: %d blob files could not be deleted; their tombstones stay for a later run\n", r.Failed)
	}
	if r.Held > 0 {
		fmt.Fprintf(w, "gc: %d blobs left to another gc run that holds them\n", r.Held)
	}
}

func newFsck() *cobra.Command {
	var cfgFile, data string
	var repair bool
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "fsck",
		Short: "Verify every blob and that metadata and bytes agree (exit 1 if not)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadFor(cmd, cfgFile, data)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("grace") {
				grace = cfg.GC.Grace
			}
			logger := newLogger(cmd.ErrOrStderr(), cfg.Log)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			st, err := server.OpenStores(ctx, cfg, logger)
			if err != nil {
				return err
			}
			defer st.Close()
			opts := fsck.Options{Repair: repair, Grace: grace, ClaimLease: cfg.GC.ClaimLease}
			if repair {
				// Holding serve's lock proves nothing serves this data, so
				// leftovers of any age are a crash's; it also keeps a
				// berth serve from starting during the repair.
				var release func()
				if l, ok := st.Meta.(server.Locker); ok && st.Shared {
					// Replicas share the metadata: their lock is in the
					// database, not in storage.dir.
					var held bool
					release, held, err = l.TryExclusive(ctx)
					if err == nil && !held {
						err = errDataInUse
					}
				} else {
					release, err = lockData(cfg.Storage.Dir)
				}
				switch {
				case err == nil:
					defer release()
					opts.Exclusive = true
					opts.Quarantine = filepath.Join(cfg.Storage.Dir, "quarantine")
				case errors.Is(err, errDataInUse):
					fmt.Fprintf(cmd.ErrOrStderr(), "berth fsck: berth serve is running on %s (%s is locked): "+
						"leftovers younger than --grace (%s) are left for gc, and blobs a manifest references whose bytes are lost "+
						"are reported, not quarantined; stop berth serve to repair those\n", cfg.Storage.Dir, serveLockName, grace)
				default:
					return err
				}
			}
			if isTerminal(cmd.ErrOrStderr()) {
				opts.Progress = cmd.ErrOrStderr()
			}
			r, err := fsck.New(st.Meta, st.Blobs, logger.With("component", "fsck")).Check(ctx, opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			pending := 0
			for _, p := range r.Problems {
				fmt.Fprintln(out, p)
				if p.Pending && !p.Repaired {
					pending++
				}
			}
			mbps := 0.0
			if s := r.Duration.Seconds(); s > 0 {
				mbps = float64(r.Bytes) / 1e6 / s
			}
			fmt.Fprintf(out, "fsck: %d blobs (%d bytes) verified in %s (%.0f MB/s); %d problems, %d unrepaired, %d pending collection (not damage)\n",
				r.Blobs, r.Bytes, r.Duration.Round(time.Millisecond), mbps, len(r.Problems), r.Unrepaired(), pending)
			if r.Unrepaired() > 0 {
				return errors.New("fsck: problems found")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "YAML configuration file")
	f.StringVar(&data, "data", "", "data directory (overrides storage.dir)")
	f.BoolVar(&repair, "repair", false, "remove what nothing references; when berth serve is not running, also leftovers of any age, and quarantine blobs whose bytes are lost with the manifests that reference them")
	f.DurationVar(&grace, "grace", 0, "leave orphan files younger than this (default gc.grace)")
	return cmd
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/config"
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
			// The dry run is the real run on a copy of the metadata.
			c.SetSnapshot(sqliteSnapshot(metaPath(cfg)))
			r, err := c.Run(ctx, dryRun)
			printGC(cmd.OutOrStdout(), r)
			return err
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
			opts := fsck.Options{Repair: repair, Grace: grace}
			if isTerminal(cmd.ErrOrStderr()) {
				opts.Progress = cmd.ErrOrStderr()
			}
			r, err := fsck.New(st.Meta, st.Blobs, logger.With("component", "fsck")).Check(ctx, opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, p := range r.Problems {
				fmt.Fprintln(out, p)
			}
			mbps := 0.0
			if s := r.Duration.Seconds(); s > 0 {
				mbps = float64(r.Bytes) / 1e6 / s
			}
			fmt.Fprintf(out, "fsck: %d blobs (%d bytes) verified in %s (%.0f MB/s); %d problems, %d unrepaired\n",
				r.Blobs, r.Bytes, r.Duration.Round(time.Millisecond), mbps, len(r.Problems), r.Unrepaired())
			if r.Unrepaired() > 0 {
				return errors.New("fsck: problems found")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "YAML configuration file")
	f.StringVar(&data, "data", "", "data directory (overrides storage.dir)")
	f.BoolVar(&repair, "repair", false, "remove what nothing references (never a blob a manifest references)")
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

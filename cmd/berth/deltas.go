package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/delta"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/oci"
	"github.com/berth-dev/berth/server"
)

// newDeltas is `berth deltas`: list, rebuild or drop the Flatpak deltas
// of a repository. Changes are records in the metadata store; a running
// berth serve carries them out at its next delta cycle (within a minute),
// and without one the command runs the cycle itself.
func newDeltas() *cobra.Command {
	var cfgFile, data string
	cmd := &cobra.Command{
		Use:   "deltas",
		Short: "List, rebuild or drop the Flatpak delta updates of repositories",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&cfgFile, "config", "", "YAML configuration file")
	pf.StringVar(&data, "data", "", "data directory (overrides storage.dir)")

	list := &cobra.Command{
		Use:   "list [REPOSITORY]",
		Short: "List the deltas of a repository (all repositories without one)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withDeltas(cmd, cfgFile, data, false, func(env deltaEnv) error {
				repos := args
				if len(repos) == 0 {
					var err error
					if repos, err = env.meta.DeltaRepositories(cmd.Context()); err != nil {
						return err
					}
				}
				for _, repo := range repos {
					if err := oci.ValidateName(repo); err != nil {
						return err
					}
					pairs, err := env.meta.DeltaPairs(cmd.Context(), repo)
					if err != nil {
						return err
					}
					printDeltas(cmd.OutOrStdout(), repo, pairs)
				}
				return nil
			})
		},
	}
	change := func(use, short string, rebuild bool) *cobra.Command {
		return &cobra.Command{
			Use:   use + " REPOSITORY",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				repo := args[0]
				if err := oci.ValidateName(repo); err != nil {
					return err
				}
				return withDeltas(cmd, cfgFile, data, true, func(env deltaEnv) error {
					var err error
					if rebuild {
						err = env.mgr.Rebuild(cmd.Context(), repo)
					} else {
						err = env.mgr.Drop(cmd.Context(), repo)
					}
					if err != nil {
						return err
					}
					if env.serving {
						fmt.Fprintf(cmd.OutOrStdout(), "deltas of %s: %s; the running berth serve carries it out at its next delta cycle (within a minute)\n", repo, use)
						return nil
					}
					if err := env.mgr.RunOnce(cmd.Context()); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "deltas of %s: %s done\n", repo, use)
					pairs, err := env.meta.DeltaPairs(cmd.Context(), repo)
					if err != nil {
						return err
					}
					printDeltas(cmd.OutOrStdout(), repo, pairs)
					return nil
				})
			},
		}
	}
	cmd.AddCommand(list,
		change("rebuild", "Forget a repository's deltas and make them again (until each is made, updates download whole layers)", true),
		change("drop", "Remove a repository's deltas (images pushed later get deltas again)", false))
	return cmd
}

// deltaEnv is what a deltas subcommand works with.
type deltaEnv struct {
	meta server.Meta
	mgr  *delta.Manager
	// serving: berth serve holds the data directory (its worker makes the
	// deltas); otherwise this process holds the lock while it runs.
	serving bool
}

// withDeltas opens the stores named by the configuration and runs fn.
// With lock, it takes the serve lock when it is free (so only one process
// makes deltas), and reports in env.serving that it is not.
func withDeltas(cmd *cobra.Command, cfgFile, data string, lock bool, fn func(deltaEnv) error) error {
	cfg, err := loadFor(cmd, cfgFile, data)
	if err != nil {
		return err
	}
	logger := newLogger(cmd.ErrOrStderr(), cfg.Log)
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd.SetContext(ctx)
	env := deltaEnv{}
	if lock {
		release, err := lockData(cfg.Storage.Dir)
		switch {
		case errors.Is(err, errDataInUse):
			env.serving = true
		case err != nil:
			return err
		default:
			defer release()
		}
	}
	st, err := server.OpenStores(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	env.meta = st.Meta
	if st.Shared {
		// The metadata is shared by replicas: their workers make the
		// deltas, and their leases are theirs.
		env.serving = true
	}
	opts := server.DeltaOptions(cfg)
	if !env.serving && lock {
		if err := os.MkdirAll(opts.TempDir, 0o750); err != nil {
			return fmt.Errorf("deltas: %w", err)
		}
		if err := st.Meta.ReleaseDeltaLeases(ctx); err != nil {
			return err
		}
	}
	env.mgr = delta.New(st.Meta, st.Blobs, opts, logger.With("component", "deltas"))
	return fn(env)
}

// printDeltas prints a repository's delta pairs as a table.
func printDeltas(w io.Writer, repo string, pairs []meta.DeltaPair) {
	fmt.Fprintf(w, "%s: %d deltas\n", repo, len(pairs))
	if len(pairs) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TARGET\tSOURCE\tSTATE\tDELTA BYTES\tLAYER BYTES\tDETAIL")
	for _, p := range pairs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%s\n", short(p.Target), short(p.Source), p.State, p.Size, p.LayerSize, p.Detail)
	}
	tw.Flush()
}

// short is a digest's first 12 hex digits.
func short(d interface{ Encoded() string }) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}

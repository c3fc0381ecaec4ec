package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Set by a release build (scripts/build.sh, packaging/build.sh):
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.commit=<sha> -X main.date=<RFC 3339>"
//
// A plain `go build` or `go install` from a checkout leaves them empty and
// versionInfo falls back to what the Go toolchain embeds: the module
// version (a tag, or a pseudo-version since Go 1.24) and vcs.revision,
// vcs.time and vcs.modified.
var (
	version = ""
	commit  = ""
	date    = ""
)

// buildInfo is what `berth version` and `berth --version` print.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Modified  bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	Date      string `json:"date,omitempty"`     // the build date, or the commit time (DateIsCommit)
	DateIsVCS bool   `json:"date_is_commit_time,omitempty"`
	GoVersion string `json:"go"`
	Platform  string `json:"platform"`
}

// versionInfo combines the -ldflags values with the toolchain's build
// information; the -ldflags values win, since a release build knows its
// tag and date better than the VCS stamp does (and a build from a source
// tarball has no VCS stamp at all).
func versionInfo() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	return makeBuildInfo(bi, version, commit, date)
}

func makeBuildInfo(bi *debug.BuildInfo, ldVersion, ldCommit, ldDate string) buildInfo {
	info := buildInfo{
		Version:   ldVersion,
		Commit:    ldCommit,
		Date:      ldDate,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		var rev, vtime string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				vtime = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		if info.Commit == "" {
			info.Commit = rev
		}
		if info.Date == "" && vtime != "" {
			info.Date, info.DateIsVCS = vtime, true
		}
		// A release build's describe string already says "-dirty";
		// vcs.modified is only trusted for the revision it came with.
		if ldCommit != "" && ldCommit != rev {
			info.Modified = strings.HasSuffix(ldVersion, "-dirty")
		}
	}
	if info.Version == "" {
		info.Version = "(devel)"
	}
	return info
}

// String is the multi-line text both `berth version` and `berth --version`
// print; its first line is "berth <version>", which scripts may read.
func (b buildInfo) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "berth %s\n", b.Version)
	c := b.Commit
	if c == "" {
		c = "unknown"
	}
	if b.Modified {
		c += " (modified)"
	}
	fmt.Fprintf(&sb, "commit:  %s\n", c)
	switch {
	case b.Date == "":
		fmt.Fprintf(&sb, "built:   unknown\n")
	case b.DateIsVCS:
		fmt.Fprintf(&sb, "built:   unknown (commit time %s)\n", b.Date)
	default:
		fmt.Fprintf(&sb, "built:   %s\n", b.Date)
	}
	fmt.Fprintf(&sb, "go:      %s %s\n", b.GoVersion, b.Platform)
	return sb.String()
}

// buildVersion is the one-word version the serve log line carries.
func buildVersion() string {
	b := versionInfo()
	if b.Version == "(devel)" && len(b.Commit) >= 12 {
		return "(devel) " + b.Commit[:12]
	}
	return b.Version
}

func newVersion() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := versionInfo()
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			_, err := fmt.Fprint(cmd.OutOrStdout(), info.String())
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// setVersionFlag gives the root command `--version` with the same text as
// `berth version` (cobra adds the flag when Version is set).
func setVersionFlag(root *cobra.Command) {
	info := versionInfo()
	root.Version = info.Version
	// The template is text/template: the text goes in as a quoted
	// string, so nothing in it is read as an action.
	root.SetVersionTemplate(fmt.Sprintf("{{%q}}", info.String()))
}

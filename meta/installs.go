package meta

import "github.com/opencontainers/go-digest"

// Flatpak install counts (package flatpak's InstallCounter): installs and
// updates of a ref's versions, counted from the flatpak client's layer
// downloads and kept aggregated per day.

// Install kinds.
const (
	KindInstall = "install"
	KindUpdate  = "update"
)

// InstallCount is a number of installs (or updates) of one version of a
// ref on one day.
type InstallCount struct {
	// Day is the UTC day, in days since 1970-01-01.
	Day     int64
	Repo    string
	Ref     string        // app|runtime/ID/ARCH/BRANCH
	Version digest.Digest // the image (manifest digest) installed
	Kind    string        // KindInstall or KindUpdate
	Count   int64
}

// InstallTotal sums the counts of one version of a ref and one kind over
// a span of days.
type InstallTotal struct {
	Repo    string
	Ref     string
	Version digest.Digest
	Kind    string
	Count   int64
}

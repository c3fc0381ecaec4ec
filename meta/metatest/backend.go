package metatest

import (
	"context"
	"testing"

	"github.com/berth-dev/berth/meta"
)

// Backend is everything a metadata backend provides: the union of what
// Berth's packages consume (registry.Meta, gc.Meta, fsck.Meta and
// fsck.DeltaMeta, flatpak's Meta, IconStore and InstallStore, web.Catalog
// with DeltaSizes and InstallStats, notify.Store, delta.Store, the
// server's stats), each area's contract being one of this package's Run*
// suites. A backend asserts it at compile time
// (var _ metatest.Backend = (*Store)(nil)) and runs RunAll; the server's
// tests assert that every consumer's interface is a subset of it, so a
// method a consumer adds and a backend lacks fails to compile.
type Backend interface {
	GCStore
	IndexStore
	CatalogStore
	EventStore
	IconAccessStore
	DeltaStore
	InstallStore
	LeaseStore
	meta.StatsReader
	// Now is the clock the store stamps rows with (RunClock).
	meta.Clock
	// UploadKnown reports whether an upload session exists (fsck).
	UploadKnown(ctx context.Context, id string) (bool, error)
}

// RunAll runs every contract of this package on stores newStore makes:
// the core (Run), garbage collection, the Flatpak index and icons, the
// catalogue, the events outbox, deltas, install counts and leases.
func RunAll(t *testing.T, newStore func(t *testing.T) Backend) {
	t.Run("Core", func(t *testing.T) { Run(t, func(t *testing.T) meta.Store { return newStore(t) }) })
	t.Run("Index", func(t *testing.T) { RunIndex(t, func(t *testing.T) IndexStore { return newStore(t) }) })
	t.Run("Catalog", func(t *testing.T) { RunCatalog(t, func(t *testing.T) CatalogStore { return newStore(t) }) })
	t.Run("Events", func(t *testing.T) { RunEvents(t, func(t *testing.T) EventStore { return newStore(t) }) })
	t.Run("IconAccess", func(t *testing.T) { RunIconAccess(t, func(t *testing.T) IconAccessStore { return newStore(t) }) })
	t.Run("Deltas", func(t *testing.T) { RunDeltas(t, func(t *testing.T) DeltaStore { return newStore(t) }) })
	t.Run("Installs", func(t *testing.T) { RunInstalls(t, func(t *testing.T) InstallStore { return newStore(t) }) })
	t.Run("Leases", func(t *testing.T) { RunLeases(t, func(t *testing.T) LeaseStore { return newStore(t) }) })
	t.Run("Clock", func(t *testing.T) { RunClock(t, func(t *testing.T) ClockStore { return newStore(t) }) })
}

// RunTwoHandles runs the contracts that need two connections to one
// database at once: open returns two handles (two Stores, two pools) on
// one new, empty database. This is how pushes and garbage collection meet
// between replicas, or between berth serve and berth gc:
//
//   - the gc race: pushes through one handle while the other sweeps links
//     and claims blobs with no grace; every manifest stored keeps its
//     blobs linked and alive (the locking rule in docs/design-notes.md);
//   - the outbox's order: pushes on both handles while a reader follows
//     the outbox by cursor; it sees every event (seq follows commit
//     order, no hole is filled later);
//   - delta leases: workers on both handles claim pairs; each pair is
//     claimed once.
func RunTwoHandles(t *testing.T, open func(t *testing.T) (Backend, Backend)) {
	t.Run("GCRace", func(t *testing.T) {
		a, b := open(t)
		gcRace(t, a, b)
	})
	t.Run("GCRaceReversed", func(t *testing.T) {
		a, b := open(t)
		gcRace(t, b, a)
	})
	t.Run("OutboxOrder", func(t *testing.T) {
		a, b := open(t)
		outboxOrder(t, a, b)
	})
	t.Run("DeltaClaims", func(t *testing.T) {
		a, b := open(t)
		testDeltaClaimTwoHandles(t, a, b)
	})
}

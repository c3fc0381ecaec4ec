package server

import (
	"context"

	"github.com/berth-dev/berth/delta"
	"github.com/berth-dev/berth/flatpak"
	"github.com/berth-dev/berth/fsck"
	"github.com/berth-dev/berth/gc"
	"github.com/berth-dev/berth/meta/metatest"
	"github.com/berth-dev/berth/meta/postgres"
	"github.com/berth-dev/berth/meta/sqlite"
	"github.com/berth-dev/berth/notify"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/web"
)

// Every consumer's slice of the metadata store is part of the one backend
// contract (metatest.Backend, which every backend implements and passes):
// a method a consumer adds that the contract lacks fails to compile here.
var (
	_ registry.Meta        = metatest.Backend(nil)
	_ gc.Meta              = metatest.Backend(nil)
	_ fsck.Meta            = metatest.Backend(nil)
	_ fsck.DeltaMeta       = metatest.Backend(nil)
	_ flatpak.Meta         = metatest.Backend(nil)
	_ flatpak.IconStore    = metatest.Backend(nil)
	_ flatpak.MissingIcons = metatest.Backend(nil)
	_ flatpak.InstallStore = metatest.Backend(nil)
	_ web.Catalog          = metatest.Backend(nil)
	_ web.DeltaSizes       = metatest.Backend(nil)
	_ web.InstallStats     = metatest.Backend(nil)
	_ notify.Store         = metatest.Backend(nil)
	_ delta.Store          = metatest.Backend(nil)
)

// backendCloser is a whole backend that can be closed.
type backendCloser interface {
	metatest.Backend
	Close() error
	ReleaseDeltaLeases(ctx context.Context) error
}

// The server's Meta asks nothing a backend does not provide, and both
// backends are one.
var (
	_ Meta   = backendCloser(nil)
	_ Meta   = (*sqlite.Store)(nil)
	_ Meta   = (*postgres.Store)(nil)
	_ Locker = (*postgres.Store)(nil)
)

// Package testutil holds helpers shared by the tests of several packages.
// It is imported only from _test.go files.
package testutil

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/blob/fs"
	"github.com/berth-dev/berth/meta/sqlite"
)

// Stores opens the embedded stores as berth serve lays them out in dir
// (filesystem blobs in dir/data, SQLite metadata in dir/meta.db) and closes
// the metadata store when the test ends.
func Stores(t testing.TB, dir string, logger *slog.Logger) (*fs.Store, *sqlite.Store) {
	t.Helper()
	blobs, err := fs.New(filepath.Join(dir, "data"), logger)
	if err != nil {
		t.Fatal(err)
	}
	md, err := sqlite.Open(context.Background(), filepath.Join(dir, "meta.db"), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	return blobs, md
}

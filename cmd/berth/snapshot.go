package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/config"
	"github.com/berth-dev/berth/gc"
	"github.com/berth-dev/berth/meta/sqlite"
)

// metaPath is the SQLite database of cfg's storage (as server.OpenStores
// lays it out).
func metaPath(cfg config.Config) string { return filepath.Join(cfg.Storage.Dir, "meta.db") }

// sqliteSnapshot copies the SQLite database at path for gc's dry run:
// VACUUM INTO writes a consistent copy from one read transaction, so a
// berth serve using the database meanwhile keeps serving and pushing (in
// WAL mode a reader blocks no writer). The copy goes next to the database
// (same disk, and it may be large: it holds the manifests), in a
// directory removed when the dry run ends.
func sqliteSnapshot(path string) gc.Snapshot {
	return func(ctx context.Context) (gc.Meta, func() error, error) {
		dir, err := os.MkdirTemp(filepath.Dir(path), ".gc-dry-run-")
		if err != nil {
			return nil, nil, err
		}
		dst := filepath.Join(dir, "meta.db")
		if err := vacuumInto(ctx, path, dst); err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		md, err := sqlite.Open(ctx, dst, nil)
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		return md, func() error {
			err := md.Close()
			if rerr := os.RemoveAll(dir); err == nil {
				err = rerr
			}
			return err
		}, nil
	}
}

func vacuumInto(ctx context.Context, src, dst string) error {
	abs, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	// The driver is modernc.org/sqlite, registered by meta/sqlite.
	uri := (&url.URL{Scheme: "file", Path: abs}).String() + "?_pragma=busy_timeout(5000)"
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

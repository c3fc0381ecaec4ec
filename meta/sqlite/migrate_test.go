package sqlite

import (
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/internal/sqlutil"
)

func schemaVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow(qSchemaVersion).Scan(&v); err != nil {
		t.Fatalf("schema version: %v", err)
	}
	return v
}

func TestMigrateFreshAndReopen(t *testing.T) {
	ms, err := sqlutil.LoadMigrations(migrationFS)
	if err != nil {
		t.Fatalf("loadMigrations: %v", err)
	}
	latest := ms[len(ms)-1].Version
	path := filepath.Join(t.TempDir(), "meta.db")
	ctx := t.Context()

	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatalf("Open fresh: %v", err)
	}
	d := digest.FromString("x")
	if err := s.LinkBlob(ctx, "app", d, 1); err != nil {
		t.Fatalf("LinkBlob: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if v := schemaVersion(t, path); v != latest {
		t.Errorf("schema version = %d, want %d", v, latest)
	}

	// Reopening applies nothing and keeps the data.
	for range 2 {
		s, err = Open(ctx, path, nil)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if size, err := s.BlobLink(ctx, "app", d); err != nil || size != 1 {
			t.Errorf("BlobLink after reopen = %d, %v", size, err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if v := schemaVersion(t, path); v != latest {
		t.Errorf("schema version after reopen = %d, want %d", v, latest)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows int
	if err := db.QueryRow(`SELECT COUNT(*) FROM schema_version`).Scan(&rows); err != nil || rows != latest {
		t.Errorf("schema_version has %d rows (%v), want %d", rows, err, latest)
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q (%v), want wal", mode, err)
	}
}

func TestMigrateNewerDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(qInsertSchemaVersion, 9999, 0); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(t.Context(), path, nil)
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer database: err = %v, want a version error", err)
	}
}

func TestMigrateIncremental(t *testing.T) {
	// A database at version 1 gets only the later migrations, in order.
	fsys := fstest.MapFS{
		"migrations/0001_a.sql": {Data: []byte(`CREATE TABLE a (x INTEGER);`)},
	}
	path := filepath.Join(t.TempDir(), "m.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	apply := func() {
		t.Helper()
		ms, err := sqlutil.LoadMigrations(fsys)
		if err != nil {
			t.Fatal(err)
		}
		if err := migrate(t.Context(), db, ms, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	apply()
	fsys["migrations/0002_b.sql"] = &fstest.MapFile{Data: []byte("ALTER TABLE a ADD COLUMN y TEXT;\nCREATE TABLE b (z INTEGER);")}
	fsys["migrations/0003_c.sql"] = &fstest.MapFile{Data: []byte(`INSERT INTO b (z) VALUES (3);`)}
	apply()
	apply()
	var z int
	if err := db.QueryRow(`SELECT z FROM b`).Scan(&z); err != nil || z != 3 {
		t.Errorf("b.z = %d, %v; want 3 (0003 applied once)", z, err)
	}
	if _, err := db.Exec(`INSERT INTO a (x, y) VALUES (1, 'y')`); err != nil {
		t.Errorf("0002 not applied: %v", err)
	}

	// A failing migration rolls back the whole run.
	fsys["migrations/0004_d.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE d (x INTEGER); SELECT nope FROM nowhere;`)}
	ms, err := sqlutil.LoadMigrations(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(t.Context(), db, ms, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "0004_d.sql") {
		t.Fatalf("migrate with a bad migration: err = %v", err)
	}
	var v int
	if err := db.QueryRow(qSchemaVersion).Scan(&v); err != nil || v != 3 {
		t.Errorf("version after failed migration = %d, %v; want 3", v, err)
	}
	if _, err := db.Exec(`SELECT * FROM d`); err == nil {
		t.Error("table d exists after a failed migration")
	}
}

func TestLoadMigrationsInvalid(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"gap": {
			"migrations/0001_a.sql": {Data: []byte(`SELECT 1;`)},
			"migrations/0003_c.sql": {Data: []byte(`SELECT 1;`)},
		},
		"repeat": {
			"migrations/0001_a.sql": {Data: []byte(`SELECT 1;`)},
			"migrations/001_b.sql":  {Data: []byte(`SELECT 1;`)},
		},
		"bad name": {"migrations/initial.sql": {Data: []byte(`SELECT 1;`)}},
		"zero":     {"migrations/0000_a.sql": {Data: []byte(`SELECT 1;`)}},
		"none":     {},
	} {
		if _, err := sqlutil.LoadMigrations(fsys); err == nil {
			t.Errorf("%s: loadMigrations succeeded", name)
		}
	}
}

// TestMigrateGCClaims migrates a store at schema 3 holding a tombstone of
// the old, unowned kind: after 0004 any run may take it over and finish
// it, and no one else's claim on it is assumed.
func TestMigrateGCClaims(t *testing.T) {
	ms, err := sqlutil.LoadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if err := migrate(t.Context(), db, ms[:3], slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("migrate to 3: %v", err)
	}
	d := digest.FromString("tomb")
	if _, err := db.Exec(`INSERT INTO blobs (digest, size, created, deleting) VALUES ($1, 4, 1, 1)`, string(d)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(t.Context(), path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	rec, err := s.BlobRecord(t.Context(), d)
	if err != nil || !rec.Deleting || !rec.ClaimExpires.Before(time.Now()) {
		t.Fatalf("old tombstone after migration = %+v, %v; want an expired claim", rec, err)
	}
	if err := s.DropBlobs(t.Context(), "", []digest.Digest{d}); err == nil {
		t.Error("DropBlob with an empty token succeeded")
	}
	if _, err := s.BlobRecord(t.Context(), d); err != nil {
		t.Errorf("DropBlob with an empty token dropped an unowned tombstone: %v", err)
	}
	claim := meta.Claim{Token: "new", At: time.Now(), Lease: time.Minute}
	if got, err := s.ClaimBlobs(t.Context(), []meta.BlobRecord{{Digest: d, Size: 4}}, time.Time{}, claim); len(got) != 1 || err != nil {
		t.Fatalf("ClaimBlob of the old tombstone = %v, %v", got, err)
	}
	if err := s.DropBlobs(t.Context(), claim.Token, []digest.Digest{d}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BlobRecord(t.Context(), d); !errors.Is(err, meta.ErrBlobNotFound) {
		t.Errorf("old tombstone not finished: %v", err)
	}
}

package sqlite_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/metatest"
	"github.com/berth-dev/berth/meta/sqlite"
)

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path, nil)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// The store is a whole backend (a missing method fails to compile).
var _ metatest.Backend = (*sqlite.Store)(nil)

// TestStore runs every contract of meta/metatest on SQLite.
func TestStore(t *testing.T) {
	metatest.RunAll(t, func(t *testing.T) metatest.Backend {
		return open(t, filepath.Join(t.TempDir(), "meta.db"))
	})
}

func TestOpenPath(t *testing.T) {
	dir := t.TempDir()
	// Characters that mean something in a file: URI stay part of the name.
	path := filepath.Join(dir, "a dir?x=1#frag%20", "meta.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	s := open(t, path)
	if err := s.LinkBlob(t.Context(), "app", digest.FromString("x"), 1); err != nil {
		t.Fatalf("LinkBlob: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at %s: %v", path, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%s holds %d entries, want only the database's directory", dir, len(entries))
	}

	if _, err := sqlite.Open(t.Context(), filepath.Join(dir, "missing", "meta.db"), nil); err == nil {
		t.Error("Open in a missing directory: no error")
	}
}

// TestTwoStoresOneFile writes the same database from two Stores at once, as
// `berth gc` running beside `berth serve` does: the busy timeout, not an
// error, absorbs the contention.
func TestTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	stores := []*sqlite.Store{open(t, path), open(t, path)}
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := range 8 {
		s := stores[w%2]
		wg.Go(func() {
			repo := fmt.Sprintf("repo%d", w)
			for i := range 15 {
				cfg := digest.FromString(fmt.Sprint(w, i))
				if err := s.LinkBlob(ctx, repo, cfg, 1); err != nil {
					errs <- err
					continue
				}
				c := fmt.Appendf(nil, "manifest %d %d", w, i)
				m := &meta.Manifest{Repo: repo, Digest: digest.FromBytes(c), Content: c,
					Refs: []meta.Ref{{Digest: cfg, Kind: meta.RefBlob}}}
				if err := s.PutManifest(ctx, m, "latest"); err != nil {
					errs <- err
				}
				if _, err := stores[(w+1)%2].ResolveTag(ctx, repo, "latest"); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	repos, err := stores[0].Repositories(ctx, "", -1)
	if err != nil || len(repos) != 8 {
		t.Errorf("Repositories = %q, %v; want 8", repos, err)
	}
}

// TestTwoHandles runs the two-connection contracts on two Stores over one
// SQLite file (berth gc beside berth serve).
func TestTwoHandles(t *testing.T) {
	metatest.RunTwoHandles(t, func(t *testing.T) (metatest.Backend, metatest.Backend) {
		path := filepath.Join(t.TempDir(), "meta.db")
		return open(t, path), open(t, path)
	})
}

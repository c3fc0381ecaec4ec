package metatest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// testConcurrentPutSameTag pushes many manifests under the same tags from
// several goroutines, with readers and tag deleters running alongside, as
// concurrent HTTP requests do. Only the well-defined not-found errors are
// allowed, and the final state must be consistent.
func testConcurrentPutSameTag(t *testing.T, s meta.Store) {
	ctx := t.Context()
	const repo = "race/app"
	ds := link(t, s, repo, "config", "layer")
	shared := image(repo, "shared", ds[0], ds[1])

	const workers, rounds = 8, 10
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		pushed = map[digest.Digest]bool{shared.Digest: true}
		errs   []error
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		errs = append(errs, fmt.Errorf(format, args...))
		mu.Unlock()
	}
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				m := image(repo, fmt.Sprintf("w%d-r%d", w, i), ds[0], ds[1])
				mu.Lock()
				pushed[m.Digest] = true
				mu.Unlock()
				if err := s.PutManifest(ctx, m, "latest", "tmp"); err != nil {
					fail("PutManifest(%s): %v", m.Digest, err)
				}
				if err := s.PutManifest(ctx, shared, "stable", "latest"); err != nil {
					fail("PutManifest(shared): %v", err)
				}
				if err := s.DeleteTag(ctx, repo, "tmp"); err != nil && !errors.Is(err, meta.ErrTagNotFound) {
					fail("DeleteTag(tmp): %v", err)
				}
				d, err := s.ResolveTag(ctx, repo, "latest")
				if err != nil {
					fail("ResolveTag(latest): %v", err)
					continue
				}
				if _, err := s.GetManifest(ctx, repo, d); err != nil {
					fail("GetManifest(%s) of latest: %v", d, err)
				}
				if _, err := s.Tags(ctx, repo, "", -1); err != nil {
					fail("Tags: %v", err)
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}

	latest := resolve(t, s, repo, "latest")
	if !pushed[latest] {
		t.Errorf("latest = %s, which was never pushed", latest)
	}
	if d := resolve(t, s, repo, "stable"); d != shared.Digest {
		t.Errorf("stable = %s, want %s", d, shared.Digest)
	}
	for d := range pushed {
		get(t, s, repo, d)
	}
	got := slices.DeleteFunc(tags(t, s, repo), func(s string) bool { return s == "tmp" })
	if !slices.Equal(got, []string{"latest", "stable"}) {
		t.Errorf("Tags = %q, want [latest stable] (and perhaps tmp)", got)
	}
	if d, err := s.ResolveTag(ctx, repo, "tmp"); err == nil && !pushed[d] {
		t.Errorf("tmp = %s, which was never pushed", d)
	}
}

// testConcurrentWriters runs every kind of write at once, each goroutine in
// its own repository, and expects no error at all: a backend must serialise
// or retry internally rather than surface "database is locked".
func testConcurrentWriters(t *testing.T, s meta.Store) {
	ctx := t.Context()
	const workers, rounds = 8, 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	check := func(what string, err error) bool {
		if err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			mu.Unlock()
			return false
		}
		return true
	}
	for w := range workers {
		wg.Go(func() {
			repo := fmt.Sprintf("w%d/app", w)
			for i := range rounds {
				cfg, size := blob(fmt.Sprintf("config %d %d", w, i))
				layer, lsize := blob("shared layer")
				if !check("LinkBlob", s.LinkBlob(ctx, repo, cfg, size)) ||
					!check("LinkBlob", s.LinkBlob(ctx, repo, layer, lsize)) {
					continue
				}
				m := image(repo, fmt.Sprint(i), cfg, layer)
				check("PutManifest", s.PutManifest(ctx, m, "latest", fmt.Sprint("v", i)))
				id := fmt.Sprintf("upload-%d-%d", w, i)
				check("CreateUpload", s.CreateUpload(ctx, meta.Upload{ID: id, Repo: repo}))
				check("UpdateUpload", s.UpdateUpload(ctx, id, 0, 10, []byte("state")))
				_, err := s.Repositories(ctx, "", -1)
				check("Repositories", err)
				_, err = s.BlobKnown(ctx, layer)
				check("BlobKnown", err)
				if i%2 == 1 {
					check("DeleteManifest", s.DeleteManifest(ctx, repo, m.Digest))
					check("DeleteUpload", s.DeleteUpload(ctx, id))
					check("UnlinkBlob", s.UnlinkBlob(ctx, repo, cfg))
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}

	var wantRepos []string
	for w := range workers {
		repo := fmt.Sprintf("w%d/app", w)
		wantRepos = append(wantRepos, repo)
		var wantTags []string
		for i := 0; i < rounds; i += 2 {
			wantTags = append(wantTags, fmt.Sprint("v", i))
		}
		slices.Sort(wantTags)
		checkStrings(t, "Tags("+repo+")", tags(t, s, repo), wantTags)
		if d := resolve(t, s, repo, "v0"); d != image(repo, "0", digest.FromString(fmt.Sprintf("config %d 0", w)), digest.FromString("shared layer")).Digest {
			t.Errorf("%s v0 = %s, not the manifest pushed as v0", repo, d)
		}
	}
	checkStrings(t, "Repositories", repositories(t, s), wantRepos)
}

func testClose(t *testing.T, s meta.Store) {
	ctx := t.Context()
	link(t, s, "app", "config")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.BlobLink(ctx, "app", digest.FromString("config")); err == nil {
		t.Error("BlobLink after Close: no error")
	}
	if err := s.LinkBlob(ctx, "app", digest.FromString("x"), 1); err == nil {
		t.Error("LinkBlob after Close: no error")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

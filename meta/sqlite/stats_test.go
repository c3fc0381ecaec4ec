package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

func TestStats(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "meta.db"))
	ctx := t.Context()
	st, err := s.Stats(ctx)
	if err != nil || st != (meta.Stats{}) {
		t.Fatalf("empty store: %+v, %v", st, err)
	}
	a, b := digest.FromString("a"), digest.FromString("bb")
	// a is linked twice: one blob, its bytes counted once.
	for _, l := range []struct {
		repo string
		d    digest.Digest
		size int64
	}{{"x/one", a, 100}, {"x/two", a, 100}, {"x/two", b, 20}} {
		if err := s.LinkBlob(ctx, l.repo, l.d, l.size); err != nil {
			t.Fatal(err)
		}
	}
	content := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
	m := &meta.Manifest{Repo: "x/one", Digest: digest.FromBytes(content), MediaType: "application/vnd.oci.image.index.v1+json", Content: content, TotalSize: int64(len(content))}
	if err := s.PutManifest(ctx, m, "latest"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := s.CreateUpload(ctx, meta.Upload{ID: "u1", Repo: "x/three", Created: now, Updated: now}); err != nil {
		t.Fatal(err)
	}
	st, err = s.Stats(ctx)
	want := meta.Stats{Repositories: 2, Manifests: 1, Blobs: 2, BlobBytes: 120, Uploads: 1}
	if err != nil || st != want {
		t.Fatalf("Stats = %+v, %v; want %+v", st, err, want)
	}
	if err := s.DeleteUpload(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if st, _ = s.Stats(ctx); st.Uploads != 0 {
		t.Errorf("uploads after delete = %d", st.Uploads)
	}
}

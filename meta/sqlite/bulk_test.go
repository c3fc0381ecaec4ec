package sqlite_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/sqlite"
)

// TestLoad checks that Load writes what LinkBlob and PutManifest write, and
// nothing at all when one of its rows fails their checks.
func TestLoad(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "meta.db"))
	cfg, layer := digest.FromString("config"), digest.FromString("layer")
	content := []byte(`{"schemaVersion":2}`)
	m := &meta.Manifest{
		Repo: "app", Digest: digest.FromBytes(content), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Content: content, Config: cfg, Labels: map[string]string{"a": "b"},
		Refs: []meta.Ref{
			{Digest: cfg, Kind: meta.RefBlob, MediaType: "c", Size: 6},
			{Digest: layer, Kind: meta.RefBlob, MediaType: "l", Size: 5},
		},
	}
	links := []sqlite.BulkLink{{Repo: "app", Digest: cfg, Size: 6}, {Repo: "app", Digest: layer, Size: 5}}
	if err := s.Load(ctx, links, []sqlite.BulkManifest{{Manifest: m, Tags: []string{"v1", "latest"}}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetManifest(ctx, "app", m.Digest)
	if err != nil || string(got.Content) != string(content) || len(got.Refs) != 2 || got.Labels["a"] != "b" {
		t.Fatalf("GetManifest = %+v, %v", got, err)
	}
	if d, err := s.ResolveTag(ctx, "app", "latest"); d != m.Digest || err != nil {
		t.Errorf("ResolveTag = %s, %v", d, err)
	}
	if size, err := s.BlobLink(ctx, "app", layer); size != 5 || err != nil {
		t.Errorf("BlobLink = %d, %v", size, err)
	}

	// A manifest whose blob is not linked in its repository fails the
	// load, and the links before it are not written either.
	other := digest.FromString("other")
	m2 := *m
	m2.Repo = "two"
	err = s.Load(ctx, []sqlite.BulkLink{{Repo: "two", Digest: other, Size: 5}}, []sqlite.BulkManifest{{Manifest: &m2}})
	var unknown *meta.BlobUnknownError
	if !errors.As(err, &unknown) {
		t.Fatalf("Load of a manifest with unlinked blobs: %v", err)
	}
	if _, err := s.BlobLink(ctx, "two", other); !errors.Is(err, meta.ErrBlobNotFound) {
		t.Errorf("a failed Load left a link: %v", err)
	}
	if repos, _ := s.Repositories(ctx, "", -1); !slices.Equal(repos, []string{"app"}) {
		t.Errorf("Repositories after a failed Load = %v", repos)
	}
}

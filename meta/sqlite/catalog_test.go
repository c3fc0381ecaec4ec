package sqlite_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// BenchmarkCatalogVersion is the query every catalogue request makes to
// decide whether its cached view is current, over 10,000 tags.
func BenchmarkCatalogVersion(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "meta.db"))
	ctx := b.Context()
	cfg := []byte("config")
	d := digest.FromBytes(cfg)
	for r := range 100 {
		repo := fmt.Sprintf("repo%d", r)
		if err := s.LinkBlob(ctx, repo, d, int64(len(cfg))); err != nil {
			b.Fatal(err)
		}
		for i := range 100 {
			content := fmt.Appendf(nil, `{"r":%d,"i":%d}`, r, i)
			m := &meta.Manifest{Repo: repo, Digest: digest.FromBytes(content), MediaType: "application/vnd.oci.image.manifest.v1+json",
				Content: content, Config: d, Refs: []meta.Ref{{Digest: d, Kind: meta.RefBlob, Size: int64(len(cfg))}}}
			if err := s.PutManifest(ctx, m, fmt.Sprint("v", i)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.CatalogVersion(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

package sqlite_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// benchStore returns a store holding one image with a config and five
// layers, tagged latest, among 100 other manifests.
func benchStore(b *testing.B) (meta.Store, *meta.Manifest) {
	s := open(b, filepath.Join(b.TempDir(), "meta.db"))
	ctx := b.Context()
	var target *meta.Manifest
	for i := range 101 {
		m := &meta.Manifest{
			Repo:         "library/app",
			MediaType:    "application/vnd.oci.image.manifest.v1+json",
			Content:      fmt.Appendf(nil, `{"schemaVersion":2,"n":%d,"pad":"%01500d"}`, i, 0),
			ArtifactType: "application/vnd.oci.image.config.v1+json",
			Annotations:  map[string]string{"org.opencontainers.image.title": "app", "org.opencontainers.image.version": fmt.Sprint(i)},
			Labels:       map[string]string{"maintainer": "someone"},
			OS:           "linux",
			Architecture: "amd64",
		}
		m.Digest = digest.FromBytes(m.Content)
		for j := range 6 {
			d := digest.FromString(fmt.Sprint(i, j))
			if err := s.LinkBlob(ctx, m.Repo, d, 1000); err != nil {
				b.Fatal(err)
			}
			m.Refs = append(m.Refs, meta.Ref{Digest: d, Kind: meta.RefBlob, MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Size: 1000})
		}
		m.Config = m.Refs[0].Digest
		if err := s.PutManifest(ctx, m, fmt.Sprint("v", i)); err != nil {
			b.Fatal(err)
		}
		target = m
	}
	if err := s.PutManifest(ctx, target, "latest"); err != nil {
		b.Fatal(err)
	}
	return s, target
}

func BenchmarkGetManifest(b *testing.B) {
	s, m := benchStore(b)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetManifest(ctx, m.Repo, m.Digest); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetManifestParallel(b *testing.B) {
	s, m := benchStore(b)
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetManifest(ctx, m.Repo, m.Digest); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkResolveTag(b *testing.B) {
	s, m := benchStore(b)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		d, err := s.ResolveTag(ctx, m.Repo, "latest")
		if err != nil || d != m.Digest {
			b.Fatal(d, err)
		}
	}
}

func BenchmarkPutManifestTag(b *testing.B) {
	s, m := benchStore(b)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.PutManifest(ctx, m, "latest"); err != nil {
			b.Fatal(err)
		}
	}
}

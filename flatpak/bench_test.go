package flatpak_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/flatpak"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/sqlite"
)

// benchDir is a directory for the benchmark's database: in memory
// (/dev/shm) when there is one, since filling 10,000 manifests one
// fsynced transaction at a time is the store's benchmark, not this one.
func benchDir(b *testing.B) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "berth-flatpak-bench-")
		if err == nil {
			b.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return b.TempDir()
}

// gradient is a size×size PNG that differs per seed (a few KB, like real
// app icons after optimisation).
func gradient(b *testing.B, size, seed int) []byte {
	im := image.NewRGBA(image.Rect(0, 0, size, size))
	for y := range size {
		for x := range size {
			im.Set(x, y, color.RGBA{uint8(x * 255 / size), uint8(y * 255 / size), uint8(seed), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, im); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

const benchAppdata = `<?xml version="1.0" encoding="UTF-8"?>
<components version="0.8" origin="flatpak">
  <component type="desktop-application">
    <id>%[1]s</id>
    <name>App %[2]d</name>
    <summary>Benchmark application number %[2]d, with a summary of usual length</summary>
    <description><p>A paragraph or two of description, as most apps have. It says what the app does and
    why you would want it, and runs to a few hundred bytes in most AppStream files.</p>
    <ul><li>One feature</li><li>Another feature</li><li>A third feature</li></ul></description>
    <project_license>GPL-3.0-or-later</project_license>
    <url type="homepage">https://example.org/%[1]s</url>
    <categories><category>Utility</category></categories>
    <releases><release version="1.%[3]d" timestamp="1767225600"/></releases>
    <bundle type="flatpak" runtime="org.berth.Platform/x86_64/1">app/%[1]s/x86_64/stable</bundle>
  </component>
</components>
`

// BenchmarkIndex measures the index over 1,000 apps with 10 tagged
// versions each (10,000 manifests, 10,000 tags, icons recorded at push):
// flatpak's query (tag=latest, 1,000 images) answered from the cache
// (304 and 200 with the pre-gzipped body) and built from the store, and
// the whole index (no filter, 10,000 images) built from the store.
func BenchmarkIndex(b *testing.B) {
	const apps, versions = 1000, 10
	ctx := context.Background()
	md, err := sqlite.Open(ctx, filepath.Join(benchDir(b), "meta.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { md.Close() })
	rec := flatpak.NewIconRecorder(md, nil)
	start := time.Now()
	// The last two versions of each app, for moving "latest" between them.
	lastTwo := make([][2]*meta.Manifest, apps)
	for a := range apps {
		id := fmt.Sprintf("org.bench.App%04d", a)
		repo := fmt.Sprintf("apps/app%04d", a)
		i64, i128 := dataURI(gradient(b, 64, a)), dataURI(gradient(b, 128, a))
		for v := range versions {
			cfg := digest.FromString(repo + fmt.Sprint(v))
			if err := md.LinkBlob(ctx, repo, cfg, 1000); err != nil {
				b.Fatal(err)
			}
			content := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","x":%q}`, repo+fmt.Sprint(v))
			labels := flatpakLabels(id,
				flatpak.LabelAppdata, fmt.Sprintf(benchAppdata, id, a, v),
				flatpak.LabelIcon64, i64, flatpak.LabelIcon128, i128,
				"org.flatpak.commit", digest.FromString(id+fmt.Sprint(v)).Encoded(),
				"org.flatpak.timestamp", "1767225600",
				"org.flatpak.commit-metadata.xa.ref", "YXBwL29yZy5iZXJ0aC5IZWxsby94ODZfNjQvc3RhYmxlAABz",
				"org.flatpak.commit-metadata.ostree.collection-binding", "AABz")
			m := &meta.Manifest{
				Repo: repo, Digest: digest.FromBytes(content), MediaType: "application/vnd.oci.image.manifest.v1+json",
				Content: content, Config: cfg, OS: "linux", Architecture: "amd64", Labels: labels,
				Refs: []meta.Ref{{Digest: cfg, Kind: meta.RefBlob, MediaType: "application/vnd.oci.image.config.v1+json", Size: 1000}},
			}
			tag := fmt.Sprintf("v%d", v)
			if v == versions-1 {
				tag = "latest"
			}
			rec.PrepareManifest(ctx, m)
			if err := md.PutManifest(ctx, m, tag); err != nil {
				b.Fatal(err)
			}
			if v >= versions-2 {
				lastTwo[a][v-(versions-2)] = m
			}
		}
	}
	b.Logf("filled %d manifests in %s", apps*versions, time.Since(start).Round(time.Millisecond))

	query := "/index/static?" + flatpakQuery("amd64", "latest")
	serve := func(b *testing.B, h http.Handler, path string, headers ...string) *discardWriter {
		req, err := http.NewRequest("GET", "http://berth.test"+path, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Accept-Encoding", "gzip")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		w := &discardWriter{hdr: http.Header{}}
		h.ServeHTTP(w, req)
		return w
	}
	cached := flatpak.New(md, flatpak.Options{}, nil)
	first := serve(b, cached, query)
	if first.code != http.StatusOK {
		b.Fatalf("index: %d", first.code)
	}
	etag := first.hdr.Get("ETag")

	b.Run("cached/304", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if w := serve(b, cached, query, "If-None-Match", etag); w.code != http.StatusNotModified {
				b.Fatalf("status %d", w.code)
			}
		}
	})
	b.Run("cached/200-gzip", func(b *testing.B) {
		b.ReportAllocs()
		var n int
		for b.Loop() {
			w := serve(b, cached, query)
			if w.code != http.StatusOK {
				b.Fatalf("status %d", w.code)
			}
			n = w.n
		}
		b.ReportMetric(float64(n), "gzip-bytes")
	})
	// One app's "latest" moves, then flatpak's query: the cached answer is
	// refreshed from that repository alone.
	b.Run("refresh/one-tag-moved", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m := lastTwo[i%apps][(i/apps)%2] // to v8 first, then back to v9
			if err := md.PutManifest(ctx, m, "latest"); err != nil {
				b.Fatal(err)
			}
			if w := serve(b, cached, query); w.code != http.StatusOK {
				b.Fatalf("status %d", w.code)
			}
			i++
		}
	})
	uncached := flatpak.New(md, flatpak.Options{CacheBytes: -1}, nil)
	b.Run("uncached/tag=latest", func(b *testing.B) {
		b.ReportAllocs()
		var n int
		for b.Loop() {
			w := serve(b, uncached, query)
			if w.code != http.StatusOK {
				b.Fatalf("status %d", w.code)
			}
			n = w.n
		}
		b.ReportMetric(float64(n), "gzip-bytes")
	})
	b.Run("uncached/all-10000", func(b *testing.B) {
		b.ReportAllocs()
		var n int
		for b.Loop() {
			w := serve(b, uncached, "/index/static")
			if w.code != http.StatusOK {
				b.Fatalf("status %d", w.code)
			}
			n = w.n
		}
		b.ReportMetric(float64(n), "gzip-bytes")
	})
}

type discardWriter struct {
	hdr  http.Header
	code int
	n    int
}

func (w *discardWriter) Header() http.Header { return w.hdr }
func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}

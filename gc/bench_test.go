package gc

// Benchmarks. Run them with
//
//	go test -run '^$' -bench GC -benchtime 1x -timeout 30m ./gc
//
// BenchmarkGC builds a store of 100,000 blobs and 10,000 manifests (set
// BERTH_BENCH_GC_BLOBS to scale; manifests are a tenth of the blobs) and
// times a gc run over it that deletes a tenth of it, then mark-only runs
// (b.N > 1). It reports peak-heap-MB, sampled while gc runs.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob/fs"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/sqlite"
)

func BenchmarkGC(b *testing.B) {
	nBlobs := 100_000
	if s := os.Getenv("BERTH_BENCH_GC_BLOBS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		nBlobs = n
	}
	const perManifest = 10
	nManifests := nBlobs / perManifest
	ctx := context.Background()
	dir := b.TempDir()
	blobs, err := fs.New(filepath.Join(dir, "data"), nil)
	if err != nil {
		b.Fatal(err)
	}
	md, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer md.Close()

	setup := time.Now()
	for m := range nManifests {
		repo := fmt.Sprintf("repo%d", m%10)
		var refs []meta.Ref
		for i := m * perManifest; i < (m+1)*perManifest; i++ {
			data := fmt.Appendf(nil, "blob %d", i)
			d := digest.FromBytes(data)
			p := filepath.Join(blobs.Root(), "blobs", "sha256", d.Encoded()[:2], d.Encoded())
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				b.Fatal(err)
			}
			if err := md.LinkBlob(ctx, repo, d, int64(len(data))); err != nil {
				b.Fatal(err)
			}
			refs = append(refs, meta.Ref{Digest: d, Kind: meta.RefBlob, MediaType: "x", Size: int64(len(data))})
		}
		body := fmt.Appendf(nil, `{"manifest":%d}`, m)
		var tags []string
		if m%10 != 0 { // a tenth untagged: garbage
			tags = append(tags, fmt.Sprintf("t%d", m))
		}
		man := &meta.Manifest{Repo: repo, Digest: digest.FromBytes(body), MediaType: "application/vnd.oci.image.manifest.v1+json", Content: body, Refs: refs}
		if err := md.PutManifest(ctx, man, tags...); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("setup of %d blobs, %d manifests: %s", nBlobs, nManifests, time.Since(setup))

	c := New(md, blobs, Policy{Grace: time.Hour, UntaggedAfter: 24 * time.Hour, UploadExpireAfter: 24 * time.Hour}, nil)
	c.now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r, err := c.Run(ctx, false)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			b.Logf("first run: %+v", r)
		}
	}
	b.StopTimer()
	close(stop)
	<-done
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
}

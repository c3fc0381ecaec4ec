package gc

// Benchmarks. Run them with
//
//	go test -run '^$' -bench GC -benchtime 1x -timeout 30m ./gc
//
// BenchmarkGC builds a store of 100,000 blobs (real files, real rows) and
// 10,000 manifests (set BERTH_BENCH_GC_BLOBS to scale; manifests are a
// tenth of the blobs) on disk, with SQLite at its production settings, and
// times one gc run over it:
//
//   - tenth: a tenth of the manifests are untagged and old, so the run
//     deletes them, their links and their blobs (10,000), and 1,000 orphan
//     files, and marks the rest;
//   - all: every manifest is untagged and old: the run deletes everything.
//
// It reports the run's time (gc-s), blobs/s (blob rows and files the run
// went through, per second), freed/s (blobs and files deleted per second),
// peak-heap-MB (the most heap in use while gc ran, sampled every
// millisecond) and heap-growth-MB (that peak over the heap before the run).
// Later iterations (b.N > 1) find nothing to delete.

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

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/blob/fs"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/sqlite"
)

// fixture is a store built for gc at scale.
type fixture struct {
	blobs *fs.Store
	meta  *sqlite.Store
	// What a gc run with the fixture's policy must delete.
	manifests, blobRows, orphans int
	bytes                        int64
}

// fixturePolicy is the policy the fixture is built for, with the gc clock
// two days ahead: every row and file is past the grace period and every
// untagged manifest past its retention.
var fixturePolicy = Policy{Grace: time.Hour, UntaggedAfter: 24 * time.Hour, UploadExpireAfter: 24 * time.Hour}

const fixtureSkew = 48 * time.Hour

// newFixture builds, in dir, nBlobs blobs in manifests of ten blobs each,
// spread over ten repositories. Every untaggedEvery-th manifest is
// untagged (garbage with its blobs), and there is one orphan file (bytes
// with no row) per hundred blobs. Rows go in through sqlite.Load, which
// writes what LinkBlob and PutManifest write, 500 manifests to a
// transaction; files are written where blob/fs keeps them.
func newFixture(tb testing.TB, dir string, nBlobs, untaggedEvery int) *fixture {
	tb.Helper()
	const perManifest = 10
	ctx := context.Background()
	blobs, err := fs.New(filepath.Join(dir, "data"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	md, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { md.Close() })
	f := &fixture{blobs: blobs, meta: md}

	write := func(data []byte) digest.Digest {
		d := digest.FromBytes(data)
		p := filepath.Join(blobs.Root(), "blobs", "sha256", d.Encoded()[:2], d.Encoded())
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			tb.Fatal(err)
		}
		return d
	}
	var (
		links []sqlite.BulkLink
		ms    []sqlite.BulkManifest
	)
	flush := func() {
		if err := md.Load(ctx, links, ms); err != nil {
			tb.Fatal(err)
		}
		links, ms = links[:0], ms[:0]
	}
	nManifests := nBlobs / perManifest
	for m := range nManifests {
		repo := fmt.Sprintf("repo%d", m%10)
		garbage := m%untaggedEvery == 0
		refs := make([]meta.Ref, 0, perManifest)
		for i := m * perManifest; i < (m+1)*perManifest; i++ {
			data := fmt.Appendf(nil, "blob %d", i)
			d := write(data)
			links = append(links, sqlite.BulkLink{Repo: repo, Digest: d, Size: int64(len(data))})
			refs = append(refs, meta.Ref{Digest: d, Kind: meta.RefBlob, MediaType: "application/octet-stream", Size: int64(len(data))})
			if garbage {
				f.blobRows++
				f.bytes += int64(len(data))
			}
		}
		body := fmt.Appendf(nil, `{"manifest":%d}`, m)
		var tags []string
		if garbage {
			f.manifests++
		} else {
			tags = []string{fmt.Sprintf("t%d", m)}
		}
		ms = append(ms, sqlite.BulkManifest{
			Manifest: &meta.Manifest{Repo: repo, Digest: digest.FromBytes(body), MediaType: "application/vnd.oci.image.manifest.v1+json", Content: body, Refs: refs},
			Tags:     tags,
		})
		if len(ms) == 500 {
			flush()
		}
	}
	flush()
	for i := range nBlobs / 100 {
		data := fmt.Appendf(nil, "orphan %d", i)
		write(data)
		f.orphans++
		f.bytes += int64(len(data))
	}
	return f
}

func benchBlobs(b *testing.B) int {
	if s := os.Getenv("BERTH_BENCH_GC_BLOBS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return 100_000
}

func BenchmarkGC(b *testing.B) {
	for _, bc := range []struct {
		name          string
		untaggedEvery int
	}{{"tenth", 10}, {"all", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			nBlobs := benchBlobs(b)
			setup := time.Now()
			f := newFixture(b, b.TempDir(), nBlobs, bc.untaggedEvery)
			b.Logf("setup of %d blobs, %d manifests, %d orphan files: %s", nBlobs, nBlobs/10, f.orphans, time.Since(setup).Round(time.Millisecond))

			c := New(f.meta, f.blobs, fixturePolicy, nil)
			c.now = func() time.Time { return time.Now().Add(fixtureSkew) }
			runtime.GC()
			stop := sampleHeap()
			b.ReportAllocs()
			b.ResetTimer()
			var first Report
			for i := range b.N {
				r, err := c.Run(context.Background(), false)
				if err != nil {
					b.Fatal(err)
				}
				if i == 0 {
					first = r
				}
			}
			b.StopTimer()
			base, top := stop()
			b.Logf("first run: %+v", first)
			if first.Manifests != f.manifests || first.Blobs != f.blobRows || first.OrphanFiles != f.orphans || first.BytesFreed != f.bytes {
				b.Errorf("first run deleted %d manifests, %d blobs, %d orphan files, %d bytes; want %d, %d, %d, %d",
					first.Manifests, first.Blobs, first.OrphanFiles, first.BytesFreed, f.manifests, f.blobRows, f.orphans, f.bytes)
			}
			secs := first.Duration.Seconds()
			b.ReportMetric(secs, "gc-s")
			b.ReportMetric(float64(nBlobs+f.orphans)/secs, "blobs/s")
			b.ReportMetric(float64(first.Blobs+first.OrphanFiles)/secs, "freed/s")
			b.ReportMetric(float64(top)/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(top-min(base, top))/(1<<20), "heap-growth-MB")
		})
	}
}

// sampleHeap samples the heap in use every millisecond until stop is
// called; stop returns the level when sampling began and the peak.
func sampleHeap() (stop func() (base, peak uint64)) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	base := s[0].Value.Uint64()
	var peak atomic.Uint64
	peak.Store(base)
	done := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(done)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() (uint64, uint64) {
		close(quit)
		<-done
		return base, peak.Load()
	}
}

// TestFixtureRun runs gc over a small fixture of the benchmark's shape,
// spanning several listing pages and deleting batches, and checks what it
// deleted and what is left.
func TestFixtureRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds stores of 1,200 blobs")
	}
	for _, every := range []int{10, 1} {
		t.Run(fmt.Sprintf("untagged-every-%d", every), func(t *testing.T) {
			const nBlobs = 1_200 // two listing pages, three deleting batches
			dir := t.TempDir()
			f := newFixture(t, dir, nBlobs, every)
			c := New(f.meta, f.blobs, fixturePolicy, nil)
			c.now = func() time.Time { return time.Now().Add(fixtureSkew) }
			c.SetSnapshot(sqliteSnapshot(filepath.Join(dir, "meta.db")))
			dry, err := c.Run(t.Context(), true)
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.Run(t.Context(), false)
			if err != nil {
				t.Fatal(err)
			}
			if r.Manifests != f.manifests || r.Links != f.blobRows || r.Blobs != f.blobRows || r.OrphanFiles != f.orphans || r.BytesFreed != f.bytes {
				t.Errorf("run = %+v; want %d manifests, %d links, %d blobs, %d orphan files, %d bytes",
					r, f.manifests, f.blobRows, f.blobRows, f.orphans, f.bytes)
			}
			dry.Duration, dry.DryRun, r.Duration = 0, false, 0
			if dry != r {
				t.Errorf("dry run = %+v\nrun     = %+v; want the same", dry, r)
			}
			var files int
			if err := f.blobs.Walk(t.Context(), func(blob.Info) error { files++; return nil }); err != nil {
				t.Fatal(err)
			}
			if want := nBlobs - f.blobRows; files != want {
				t.Errorf("%d files left, want %d", files, want)
			}
			recs, err := f.meta.BlobRecords(t.Context(), "", -1)
			if err != nil || len(recs) != nBlobs-f.blobRows {
				t.Errorf("%d blob rows left (%v), want %d", len(recs), err, nBlobs-f.blobRows)
			}
			again, err := c.Run(t.Context(), false)
			if err != nil || again.Manifests+again.Links+again.Blobs+again.OrphanFiles != 0 {
				t.Errorf("second run = %+v, %v; want nothing deleted", again, err)
			}
		})
	}
}

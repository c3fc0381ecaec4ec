package delta_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/delta"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/meta"
)

// BenchmarkDelta measures making (and verifying and publishing) the delta
// between two versions of a layer: files of 4 MiB of incompressible data,
// one of them with 64 bytes changed and one file added. It reports the
// peak heap while the delta is made, the delta's size, and what an update
// downloads with and without it. The 512 MiB case runs only with
// BERTH_BENCH_LARGE=1 (it writes about 1.5 GB of temporary files).
//
//	go test ./delta -run '^$' -bench Delta -benchtime 3x
func BenchmarkDelta(b *testing.B) {
	sizes := []int64{64 << 20}
	if os.Getenv("BERTH_BENCH_LARGE") == "1" {
		sizes = append(sizes, 512<<20)
	}
	for _, size := range sizes {
		b.Run(fmt.Sprintf("layer=%dMiB", size>>20), func(b *testing.B) {
			e := newEnv(b)
			dir := b.TempDir()
			l1 := testutil.WriteLayer(b, filepath.Join(dir, "v1.tar.gz"), size, -1, 0)
			l2 := testutil.WriteLayer(b, filepath.Join(dir, "v2.tar.gz"), size, int(size>>20)/8, 1<<20)
			benchPush(b, e, l1)
			v2 := benchPush(b, e, l2)
			m := delta.New(e.md, e.blobs, delta.Options{TempDir: dir, MaxDiffFileSize: 64 << 20}, nil)

			var peak atomic.Uint64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				var ms runtime.MemStats
				for {
					runtime.ReadMemStats(&ms)
					if ms.HeapInuse > peak.Load() {
						peak.Store(ms.HeapInuse)
					}
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
				}
			})
			runtime.GC()
			var base runtime.MemStats
			runtime.ReadMemStats(&base)
			peak.Store(base.HeapInuse)
			b.SetBytes(size)
			b.ResetTimer()
			for range b.N {
				if err := e.md.ResetDeltas(b.Context(), "bench", true); err != nil {
					b.Fatal(err)
				}
				if err := m.RunOnce(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			close(stop)
			wg.Wait()
			pairs, err := e.md.DeltaPairs(b.Context(), "bench")
			if err != nil || len(pairs) != 1 || pairs[0].State != meta.DeltaReady || pairs[0].Target != v2 {
				b.Fatalf("pairs %+v, %v", pairs, err)
			}
			b.ReportMetric(float64(peak.Load()-base.HeapInuse)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(pairs[0].Size), "delta-bytes")
			b.ReportMetric(float64(pairs[0].LayerSize), "update-bytes-without-delta")
			b.ReportMetric(float64(pairs[0].Size)/float64(pairs[0].LayerSize)*100, "delta-%-of-layer")
		})
	}
}

// benchPush pushes an image of l (tag "latest", the ref label) to
// repository "bench" and returns its digest.
func benchPush(b *testing.B, e *env, l testutil.Layer) digest.Digest {
	b.Helper()
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Labels": map[string]string{"org.flatpak.ref": "app/org.example.Bench/x86_64/stable"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{l.DiffID.String()}},
	})
	post := func(body io.Reader, d digest.Digest) {
		res, err := http.Post(e.srv.URL+"/v2/bench/blobs/uploads/?digest="+d.String(), "application/octet-stream", body)
		if err != nil {
			b.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			b.Fatalf("POST blob: %s", res.Status)
		}
	}
	post(bytes.NewReader(cfg), digest.FromBytes(cfg))
	f, err := os.Open(l.Path)
	if err != nil {
		b.Fatal(err)
	}
	post(f, l.Digest)
	f.Close()
	mf := v1.Manifest{MediaType: v1.MediaTypeImageManifest,
		Config: v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
		Layers: []v1.Descriptor{{MediaType: v1.MediaTypeImageLayerGzip, Digest: l.Digest, Size: l.Size}}}
	mf.SchemaVersion = 2
	mb, _ := json.Marshal(mf)
	req, _ := http.NewRequest(http.MethodPut, e.srv.URL+"/v2/bench/manifests/latest", bytes.NewReader(mb))
	req.Header.Set("Content-Type", v1.MediaTypeImageManifest)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		b.Fatalf("PUT manifest: %s", res.Status)
	}
	time.Sleep(2 * time.Millisecond)
	return digest.FromBytes(mb)
}

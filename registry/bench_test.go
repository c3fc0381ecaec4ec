package registry

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// patternReader yields n deterministic pseudo-random bytes without holding
// them.
type patternReader struct {
	rng *rand.ChaCha8
	n   int64
}

func newPattern(seed byte, n int64) *patternReader {
	var s [32]byte
	s[0] = seed
	return &patternReader{rng: rand.NewChaCha8(s), n: n}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	n, _ := p.rng.Read(b)
	p.n -= int64(n)
	return n, nil
}

func patternDigest(seed byte, n int64) digest.Digest {
	h := sha256.New()
	_, _ = io.Copy(h, newPattern(seed, n))
	return digest.NewDigest(digest.SHA256, h)
}

// pushStream uploads n pattern bytes with POST ?digest=, streamed.
func pushStream(b *testing.B, tr *testRegistry, repo string, seed byte, n int64, d digest.Digest) digest.Digest {
	b.Helper()
	req, _ := http.NewRequest("POST", tr.srv.URL+"/v2/"+repo+"/blobs/uploads/?digest="+d.String(), newPattern(seed, n))
	req.ContentLength = n
	res, err := tr.srv.Client().Do(req)
	if err != nil {
		b.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		b.Fatalf("push: %d", res.StatusCode)
	}
	return d
}

// pullVerify downloads a blob and checks its digest.
func pullVerify(b *testing.B, tr *testRegistry, repo string, d digest.Digest) int64 {
	b.Helper()
	res, err := tr.srv.Client().Get(tr.srv.URL + "/v2/" + repo + "/blobs/" + d.String())
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	v := d.Verifier()
	n, err := io.Copy(v, res.Body)
	if err != nil || res.StatusCode != 200 || !v.Verified() {
		b.Fatalf("pull %s: %d %v verified=%v", d, res.StatusCode, err, v.Verified())
	}
	return n
}

func benchRegistry(b *testing.B) *testRegistry { return newTestRegistry(b, Options{}) }

func BenchmarkBlobPush(b *testing.B) {
	for _, size := range []int64{32 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			tr := benchRegistry(b)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				d := patternDigest(byte(i), size) // the client's hashing is not the server's cost
				b.StartTimer()
				pushStream(b, tr, "bench", byte(i), size, d)
			}
		})
	}
}

func BenchmarkBlobPull(b *testing.B) {
	const size = 32 << 20
	tr := benchRegistry(b)
	d := pushStream(b, tr, "bench", 1, size, patternDigest(1, size))
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pullVerify(b, tr, "bench", d)
	}
}

func BenchmarkManifestGet(b *testing.B) {
	tr := benchRegistry(b)
	img := newImage(b, "bench")
	tr.push("bench", "v1", img)
	client := tr.srv.Client()
	for _, ref := range []string{"v1", img.digest.String()} {
		b.Run(map[bool]string{true: "tag", false: "digest"}[ref == "v1"], func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				res, err := client.Get(tr.srv.URL + "/v2/bench/manifests/" + ref)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					b.Fatal(res.StatusCode)
				}
			}
		})
	}
}

// BenchmarkHeap1GiB pushes and pulls a 1 GiB blob through the HTTP stack
// and reports the largest growth of the heap over its level before the
// transfer (sampled every 5 ms): streams must stay streams. It fails above
// 32 MiB.
func BenchmarkHeap1GiB(b *testing.B) {
	const size = 1 << 30
	tr := benchRegistry(b)
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc
		var peak atomic.Uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(5 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					var m runtime.MemStats
					runtime.ReadMemStats(&m)
					if m.HeapAlloc > base && m.HeapAlloc-base > peak.Load() {
						peak.Store(m.HeapAlloc - base)
					}
				}
			}
		}()
		d := pushStream(b, tr, "big", byte(i), size, patternDigest(byte(i), size))
		if n := pullVerify(b, tr, "big", d); n != size {
			b.Fatalf("pulled %d bytes", n)
		}
		close(stop)
		wg.Wait()
		growth := float64(peak.Load()) / (1 << 20)
		b.ReportMetric(growth, "heap-growth-MiB")
		if growth > 32 {
			b.Fatalf("heap grew by %.1f MiB moving a 1 GiB blob", growth)
		}
	}
	b.SetBytes(2 * size)
}

// BenchmarkBlobPushChunked pushes 64 MiB as 8 MiB PATCHes (POST, PATCH
// with Content-Range, PUT ?digest=), as clients push big layers; compare
// with BenchmarkBlobPush/64MiB, the same bytes in one request.
func BenchmarkBlobPushChunked(b *testing.B) {
	const size, chunk = 64 << 20, 8 << 20
	tr := benchRegistry(b)
	client := tr.srv.Client()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		d := patternDigest(byte(i), size)
		b.StartTimer()
		res, err := client.Post(tr.srv.URL+"/v2/bench/blobs/uploads/", "", nil)
		if err != nil {
			b.Fatal(err)
		}
		res.Body.Close()
		loc := res.Header.Get("Location")
		if res.StatusCode != http.StatusAccepted || loc == "" {
			b.Fatalf("POST: %d", res.StatusCode)
		}
		src := newPattern(byte(i), size)
		for off := int64(0); off < size; off += chunk {
			req, _ := http.NewRequest(http.MethodPatch, tr.srv.URL+loc, io.LimitReader(src, chunk))
			req.ContentLength = chunk
			req.Header.Set("Content-Type", "application/octet-stream")
			req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, off+chunk-1))
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusAccepted {
				b.Fatalf("PATCH at %d: %d", off, res.StatusCode)
			}
			loc = res.Header.Get("Location")
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		req, _ := http.NewRequest(http.MethodPut, tr.srv.URL+loc+sep+"digest="+d.String(), nil)
		res, err = client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			b.Fatalf("PUT: %d", res.StatusCode)
		}
	}
}

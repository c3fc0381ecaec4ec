package flatpak_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/berth-dev/berth/flatpak"
)

// TestIndexMemoryUnderHostileQueries: many concurrent index queries, each
// with a distinct filter (so each misses the cache), over many large
// images keep the heap flat: each answer stops at MaxIndexBytes and is
// built part by part, and the cache stays within its budget (audit: one
// index answer reached 31.6 MB and 527 MB of memory). The bound is
// generous: uncapped, each build held the whole ~24 MB answer several
// times over. No timing is measured, only the heap's peak, sampled.
func TestIndexMemoryUnderHostileQueries(t *testing.T) {
	const (
		images     = 48
		labelBytes = 256 << 10 // of hex text: ~512 KiB of index per image
		queries    = 32
		maxGrowth  = 48 << 20
	)
	e := newEnv(t, flatpak.Options{MaxIndexBytes: 1 << 20, CacheBytes: 4 << 20})
	raw := make([]byte, labelBytes/2-64)
	for i := range images {
		_, _ = rand.Read(raw)
		repo := fmt.Sprintf("apps/big%02d", i)
		e.push(repo, img{labels: flatpakLabels(fmt.Sprintf("org.example.Big%02d", i),
			"org.flatpak.commit-metadata.big", hex.EncodeToString(raw)), seed: repo}, "latest")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(50))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc

	var (
		peak atomic.Uint64
		stop = make(chan struct{})
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			default:
				runtime.Gosched()
			}
		}
	}()
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := range queries {
		wg.Go(func() {
			res, body := e.do("GET", fmt.Sprintf("/index/static?tag=latest&tag=miss%d&architecture=amd64", i), nil, "Accept-Encoding", "gzip")
			if res.StatusCode != http.StatusOK || len(body) == 0 {
				bad.Add(1)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-done
	if bad.Load() > 0 {
		t.Fatalf("%d queries failed", bad.Load())
	}
	growth := int64(peak.Load()) - int64(base)
	t.Logf("heap: base %d MiB, peak growth %d MiB over %d concurrent distinct queries", base>>20, growth>>20, queries)
	if growth > maxGrowth {
		t.Errorf("heap grew by %d MiB under %d concurrent distinct queries, want at most %d MiB", growth>>20, queries, maxGrowth>>20)
	}
}

package bench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// Limits are this machine's ceilings, measured the way the scenarios use
// the machine.
type Limits struct {
	CPUs            int     `json:"cpus"`
	SHA256OneCore   float64 `json:"sha256_one_core_mib_s"`
	SHA256AllCores  float64 `json:"sha256_all_cores_mib_s"`
	ServeContent1   float64 `json:"servecontent_one_stream_mib_s"`
	ServeContent2   float64 `json:"servecontent_two_streams_mib_s"`
	FdatasyncWrites float64 `json:"fdatasync_writes_mib_s"`
	SmallFsyncs     float64 `json:"small_fsyncs_per_s"`
}

// MeasureLimits measures the limits, with files under dir (put it on the
// registries' file system). size is the bytes of each transfer.
func MeasureLimits(ctx context.Context, dir string, size int64) (Limits, error) {
	l := Limits{CPUs: runtime.NumCPU()}
	l.SHA256OneCore = sha256Rate(1, size)
	l.SHA256AllCores = sha256Rate(l.CPUs, size)
	var err error
	if l.FdatasyncWrites, err = syncedWrites(dir, size); err != nil {
		return l, err
	}
	if l.SmallFsyncs, err = smallFsyncs(dir, 2*time.Second); err != nil {
		return l, err
	}
	if l.ServeContent1, l.ServeContent2, err = serveContent(ctx, dir, size); err != nil {
		return l, err
	}
	return l, nil
}

// sha256Rate hashes size bytes on each of n goroutines and returns MiB/s
// over all of them.
func sha256Rate(n int, size int64) float64 {
	start := time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			h := sha256.New()
			for off := int64(0); off < size; off += blockSize {
				h.Write(block[:min(blockSize, size-off)])
			}
			h.Sum(nil)
		})
	}
	wg.Wait()
	return float64(n) * float64(size) / (1 << 20) / time.Since(start).Seconds()
}

// syncedWrites writes size bytes in 1 MiB writes, fdatasyncs and closes:
// MiB/s.
func syncedWrites(dir string, size int64) (float64, error) {
	f, err := os.CreateTemp(dir, "limits-write-")
	if err != nil {
		return 0, fmt.Errorf("fdatasync'd writes: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	start := time.Now()
	for off := int64(0); off < size; off += blockSize {
		if _, err := f.Write(block[:min(blockSize, size-off)]); err != nil {
			return 0, fmt.Errorf("fdatasync'd writes: %w", err)
		}
	}
	if err := fdatasync(f); err != nil {
		return 0, fmt.Errorf("fdatasync'd writes: %w", err)
	}
	return float64(size) / (1 << 20) / time.Since(start).Seconds(), nil
}

// smallFsyncs appends 4 KiB and fdatasyncs, again and again for d:
// syncs per second.
func smallFsyncs(dir string, d time.Duration) (float64, error) {
	f, err := os.CreateTemp(dir, "limits-fsync-")
	if err != nil {
		return 0, fmt.Errorf("small fsyncs: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		if _, err := f.Write(block[:4<<10]); err != nil {
			return 0, fmt.Errorf("small fsyncs: %w", err)
		}
		if err := fdatasync(f); err != nil {
			return 0, fmt.Errorf("small fsyncs: %w", err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// serveContent serves a size-byte file with http.ServeContent on loopback
// and reads it on one stream (twice), then on two: MiB/s of each.
func serveContent(ctx context.Context, dir string, size int64) (one, two float64, err error) {
	path := filepath.Join(dir, "limits-serve")
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, fmt.Errorf("ServeContent: %w", err)
	}
	defer os.Remove(path)
	if _, err := io.Copy(f, io.LimitReader(newGen("serve", size), size)); err != nil {
		f.Close()
		return 0, 0, fmt.Errorf("ServeContent: %w", err)
	}
	f.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, fmt.Errorf("ServeContent: %w", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "", time.Time{}, f)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	c, err := NewClient("http://"+ln.Addr().String(), 2)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	rate := func(streams, per int) (float64, error) {
		start := time.Now()
		errs := make([]error, streams)
		var wg sync.WaitGroup
		for s := range streams {
			wg.Go(func() {
				buf := make([]byte, 256<<10)
				for range per {
					n, _, err := c.Get(ctx, "/", buf, nil)
					if err == nil && n != size {
						err = fmt.Errorf("got %d bytes, want %d", n, size)
					}
					if err != nil {
						errs[s] = err
						return
					}
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return 0, fmt.Errorf("ServeContent: %w", err)
			}
		}
		return float64(streams*per) * float64(size) / (1 << 20) / time.Since(start).Seconds(), nil
	}
	if _, err := rate(1, 1); err != nil { // warm the page cache
		return 0, 0, err
	}
	if one, err = rate(1, 2); err != nil {
		return 0, 0, err
	}
	two, err = rate(2, 2)
	return one, two, err
}

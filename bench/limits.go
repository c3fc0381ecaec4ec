package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
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
	// PlainIngest1 and PlainIngest2 are a plain upload server's MiB/s on
	// one stream and on two (plainIngest): the push counterpart of
	// ServeContent, paying what any registry's push pays on this machine
	// (receiving, hashing, writing new page cache, one fdatasync), and no
	// more.
	PlainIngest1 float64 `json:"plain_ingest_one_stream_mib_s"`
	PlainIngest2 float64 `json:"plain_ingest_two_streams_mib_s"`
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
	if l.PlainIngest1, l.PlainIngest2, err = plainIngest(ctx, dir, size); err != nil {
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
	bufs := [][]byte{make([]byte, 256<<10), make([]byte, 256<<10)}
	rate := func(streams, per int) (float64, error) {
		mib, err := streamRate(streams, per, size, func(s, _ int) error {
			n, _, err := c.Get(ctx, "/", bufs[s], nil)
			if err == nil && n != size {
				err = fmt.Errorf("got %d bytes, want %d", n, size)
			}
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("ServeContent: %w", err)
		}
		return mib, nil
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

// plainIngest runs the simplest durable upload server on loopback: each PUT
// body goes through one 256 KiB buffer into a new file and a sha256 on the
// handler's goroutine, is fdatasync'd and checked against ?digest=, and the
// file is kept (as a registry keeps blobs, so every upload writes new page
// cache) until the measurement ends. It returns MiB/s on one stream (two
// uploads) and on two (two uploads each).
//
// On a virtual machine the pages of a growing page cache can cost far more
// than the copy into them (the host backs them on first touch; on this
// project's 2-core machine, 1.3-1.5 CPU s per GiB against 0.16 for pages
// freed a moment before): this limit pays that as a registry does, where
// fdatasync'd writes (one file, rewritten) may not.
func plainIngest(ctx context.Context, dir string, size int64) (one, two float64, err error) {
	up, err := os.MkdirTemp(dir, "limits-ingest-")
	if err != nil {
		return 0, 0, fmt.Errorf("plain ingest: %w", err)
	}
	defer os.RemoveAll(up)
	store := func(r *http.Request) (int, error) {
		f, err := os.CreateTemp(up, "blob-")
		if err != nil {
			return http.StatusInternalServerError, err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.CopyBuffer(io.MultiWriter(f, h), r.Body, make([]byte, 256<<10)); err != nil {
			return http.StatusBadRequest, err
		}
		if err := fdatasync(f); err != nil {
			return http.StatusInternalServerError, err
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != r.URL.Query().Get("digest") {
			return http.StatusBadRequest, fmt.Errorf("body hashes to %s, not %s", got, r.URL.Query().Get("digest"))
		}
		return http.StatusCreated, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, fmt.Errorf("plain ingest: %w", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, err := store(r)
		if err != nil {
			http.Error(w, err.Error(), code)
			return
		}
		w.WriteHeader(code)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	c, err := NewClient("http://"+ln.Addr().String(), 2)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	dgst := genDigest("ingest", size)
	rate := func(streams, per int) (float64, error) {
		mib, err := streamRate(streams, per, size, func(s, i int) error {
			ref := "/" + strconv.Itoa(s) + "/" + strconv.Itoa(i) + "?digest=" + string(dgst)
			res, err := c.do(ctx, "PUT", ref, newGen("ingest", size), size, nil, http.StatusCreated)
			if err == nil {
				err = discard(res)
			}
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("plain ingest: %w", err)
		}
		return mib, nil
	}
	if one, err = rate(1, 2); err != nil {
		return 0, 0, err
	}
	two, err = rate(2, 2)
	return one, two, err
}

// streamRate runs transfer per times on each of streams goroutines (s is
// the stream, i the transfer) and returns the MiB/s of them all, size bytes
// each, or the first stream's error.
func streamRate(streams, per int, size int64, transfer func(s, i int) error) (float64, error) {
	start := time.Now()
	errs := make([]error, streams)
	var wg sync.WaitGroup
	for s := range streams {
		wg.Go(func() {
			for i := range per {
				if err := transfer(s, i); err != nil {
					errs[s] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return float64(streams*per) * float64(size) / (1 << 20) / time.Since(start).Seconds(), nil
}

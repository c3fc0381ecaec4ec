package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/config"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/server"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRoot(&out, &out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestVersion(t *testing.T) {
	out, err := run(t, "version")
	if err != nil || !strings.HasPrefix(out, "berth ") {
		t.Fatalf("version: %q %v", out, err)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("http:\n  addr: 127.0.0.1:0\n"), 0o600)
	os.WriteFile(bad, []byte("http:\n  addr: \"\"\nlog:\n  level: chatty\n"), 0o600)
	if out, err := run(t, "config", "check", "--config", good); err != nil || !strings.Contains(out, "valid") {
		t.Fatalf("good config: %q %v", out, err)
	}
	_, err := run(t, "config", "check", "--config", bad)
	if err == nil || !strings.Contains(err.Error(), "http.addr: required") || !strings.Contains(err.Error(), "log.level") {
		t.Fatalf("bad config: %v", err)
	}
	if _, err := run(t, "serve", "--config", bad); err == nil {
		t.Fatal("serve started with a bad config")
	}
}

// waitAddr waits for serve to write its address to addrFile (database
// open, migrations, listening: seconds under -race on a loaded machine),
// failing the test if serve returns first or after a minute.
func waitAddr(t *testing.T, addrFile string, done <-chan error) string {
	t.Helper()
	end := time.Now().Add(time.Minute)
	for time.Now().Before(end) {
		if b, err := os.ReadFile(addrFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return strings.TrimSpace(string(b))
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned before writing its address: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("no address written in a minute")
	return ""
}

// TestServeAndShutdown starts serve on port 0, checks /v2/ answers, and
// checks that cancelling the context (SIGTERM's path) stops it cleanly.
func TestServeAndShutdown(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Storage.Dir = filepath.Join(dir, "data")
	addrFile := filepath.Join(dir, "addr")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, addrFile, slog.New(slog.DiscardHandler)) }()
	addr := waitAddr(t, addrFile, done)
	res, err := http.Get("http://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("X-Request-Id") == "" {
		t.Fatalf("/v2/: %d %v", res.StatusCode, res.Header)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	if _, err := os.Stat(filepath.Join(cfg.Storage.Dir, "meta.db")); err != nil {
		t.Fatalf("no metadata database: %v", err)
	}
}

func TestGCAndFsck(t *testing.T) {
	dir := t.TempDir()
	out, err := run(t, "gc", "--data", dir, "--dry-run")
	if err != nil || !strings.Contains(out, "gc would delete: 0 manifests") {
		t.Fatalf("gc --dry-run = %q, %v", out, err)
	}
	if out, err := run(t, "fsck", "--data", dir); err != nil || !strings.Contains(out, "0 problems") {
		t.Fatalf("fsck of an empty store = %q, %v", out, err)
	}
	// An orphan file: pending collection (gc's), not damage; --repair
	// removes it.
	orphan := []byte("orphan")
	hex := fmt.Sprintf("%x", sha256.Sum256(orphan))
	p := filepath.Join(dir, "blobs", "sha256", hex[:2], hex)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, orphan, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, "fsck", "--data", dir); err != nil || !strings.Contains(out, "orphan-file") || !strings.Contains(out, "\npending collection: orphan-file") {
		t.Fatalf("fsck with an orphan = %q, %v; want it listed as pending collection, exit 0", out, err)
	}
	if out, err := run(t, "fsck", "--data", dir, "--repair", "--grace", "0s"); err != nil || !strings.Contains(out, "[repaired]") {
		t.Fatalf("fsck --repair = %q, %v", out, err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("orphan still there: %v", err)
	}
	if _, err := run(t, "gc", "--data", filepath.Join(dir, "missing")); err == nil {
		t.Error("gc of a missing data directory: no error")
	}
}

// TestServeFinishesTombstones: a tombstone left by a gc that crashed
// (lease over) refuses pushes of its blob; serve finishes it before it
// answers, so the first push succeeds.
func TestServeFinishesTombstones(t *testing.T) {
	cfg := config.Default()
	cfg.Storage.Dir = t.TempDir()
	ctx := t.Context()
	data := []byte("a blob whose deletion a crash interrupted")
	d := digest.FromBytes(data)
	st, err := server.OpenStores(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	w, err := st.Blobs.Upload(ctx, "0000000000000000000000000000000a", blob.UploadState{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if _, err := w.Commit(ctx, d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	crashed := meta.Claim{Token: "crashed", At: time.Now().Add(-time.Hour), Lease: meta.DefaultClaimLease}
	if got, err := st.Meta.ClaimBlobs(ctx, []meta.BlobRecord{{Digest: d, Size: int64(len(data))}}, time.Now(), crashed); len(got) != 1 || err != nil {
		t.Fatal(got, err)
	}
	st.Close()

	srv, err := server.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	res, err := http.Post(hs.URL+"/v2/app/blobs/uploads/?digest="+d.String(), "application/octet-stream", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Errorf("first push after a restart = %d, want 201: the crashed gc's tombstone was not finished", res.StatusCode)
	}
}

// TestGCPercent: serve applies limits.gc_percent (from the file or its
// BERTH_ variable) unless GOGC is set, which the Go runtime has applied.
func TestGCPercent(t *testing.T) {
	cfg, _, err := config.Load("", []string{"BERTH_LIMITS_GC_PERCENT=80", "BERTH_LIMITS_GC_MIN_HEAP_BYTES=1048576"})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	if pct, floor, ok := gcPercent(cfg, func(k string) string { return env[k] }); !ok || pct != 80 || floor != 1<<20 {
		t.Errorf("gcPercent = %d, %d, %v; want 80, 1048576, true", pct, floor, ok)
	}
	env["GOGC"] = "200"
	if pct, _, ok := gcPercent(cfg, func(k string) string { return env[k] }); ok {
		t.Errorf("gcPercent with GOGC set = %d, true; want it left to the runtime", pct)
	}
	if d := config.Default().Limits; d.GCPercent != 50 || d.GCMinHeapBytes != 16<<20 {
		t.Errorf("default gc_percent, gc_min_heap_bytes = %d, %d; want 50, 16 MiB", d.GCPercent, d.GCMinHeapBytes)
	}
	for _, v := range []string{"-1", "1099511627777"} {
		if _, _, err := config.Load("", []string{"BERTH_LIMITS_GC_MIN_HEAP_BYTES=" + v}); err == nil || !strings.Contains(err.Error(), "gc_min_heap_bytes") {
			t.Errorf("gc_min_heap_bytes %s loaded: %v", v, err)
		}
	}
}

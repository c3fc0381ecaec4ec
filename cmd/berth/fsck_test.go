package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/config"
	"github.com/berth-dev/berth/server"
)

// TestSecondServeFailsFast: berth serve holds serve.lock, so a second one
// on the same directory fails at once, saying why, and one can start
// again once the first is gone.
func TestSecondServeFailsFast(t *testing.T) {
	cfg := config.Default()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Storage.Dir = filepath.Join(t.TempDir(), "data")
	release, err := lockData(cfg.Storage.Dir) // the first berth serve
	if err != nil {
		t.Fatal(err)
	}
	// A cancelled context: were the lock not checked, serve would open the
	// stores and return at once rather than serve, failing the test.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = serve(ctx, cfg, "", slog.New(slog.DiscardHandler))
	if !errors.Is(err, errDataInUse) || !strings.Contains(err.Error(), "already used by another berth serve") ||
		!strings.Contains(err.Error(), cfg.Storage.Dir) {
		t.Fatalf("second serve: %v", err)
	}
	release()
	release, err = lockData(cfg.Storage.Dir)
	if err != nil {
		t.Fatalf("lock after the first serve ended: %v", err)
	}
	release()
}

// TestFsckAfterCrash: a blob file a killed push left without a row is
// pending collection: berth fsck exits 0; fsck --repair leaves it while
// berth serve runs (and says why), removes it when it does not.
func TestFsckAfterCrash(t *testing.T) {
	cfg := config.Default()
	cfg.Storage.Dir = filepath.Join(t.TempDir(), "data")
	st, err := server.OpenStores(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("a layer whose push was killed before its link")
	d := digest.FromBytes(data)
	w, err := st.Blobs.Upload(context.Background(), "0123456789abcdef0123456789abcdef", blob.UploadState{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if _, err := w.Commit(context.Background(), d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	st.Close()

	out, err := run(t, "fsck", "--data", cfg.Storage.Dir)
	if err != nil || !strings.Contains(out, "orphan-file "+d.String()) || !strings.Contains(out, "pending collection") {
		t.Fatalf("fsck: %v\n%s", err, out)
	}

	release, err := lockData(cfg.Storage.Dir) // berth serve runs
	if err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "fsck", "--repair", "--data", cfg.Storage.Dir)
	release()
	if err != nil || !strings.Contains(out, "berth serve is running") || strings.Contains(out, "[repaired]") {
		t.Fatalf("fsck --repair while serving: %v\n%s", err, out)
	}

	out, err = run(t, "fsck", "--repair", "--data", cfg.Storage.Dir)
	if err != nil || !strings.Contains(out, "orphan-file "+d.String()) || !strings.Contains(out, "[repaired]") {
		t.Fatalf("fsck --repair: %v\n%s", err, out)
	}
	out, err = run(t, "fsck", "--data", cfg.Storage.Dir)
	if err != nil || !strings.Contains(out, "0 problems") {
		t.Fatalf("fsck after the repair: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(cfg.Storage.Dir, serveLockName)); err != nil {
		t.Errorf("serve.lock: %v", err)
	}
}

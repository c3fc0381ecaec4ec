package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/faults"
	"github.com/berth-dev/berth/internal/testutil"
)

// probe GETs /readyz and decodes its answer.
func probe(t *testing.T, h http.Handler) (int, readyAnswer) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	var a readyAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("readyz body %q: %v", rec.Body.String(), err)
	}
	return rec.Code, a
}

// TestReadyzFollowsTheStores: /readyz is 503 naming the store while the
// metadata or the blob store fails or hangs, and 200 again once it
// answers; error texts stay in the log.
func TestReadyzFollowsTheStores(t *testing.T) {
	bs, md := testutil.Stores(t, t.TempDir(), nil)
	in := faults.New()
	rd := newReadiness(nil, metaCheck(faults.Meta(md, in)), blobCheck(faults.Blobs(bs, in)))
	// Generous: the answers here come at once (ok, or the injected
	// error); only a loaded machine (-race, parallel packages) makes a
	// healthy SQLite query slow, and that must not read as a timeout. The
	// timeout itself is tested with the hung store below.
	rd.timeout = 10 * time.Second

	want := func(code int, metaRes, blobRes string) {
		t.Helper()
		c, a := probe(t, rd)
		if c != code || a.Checks["metadata"] != metaRes || a.Checks["blobs"] != blobRes {
			t.Fatalf("readyz = %d %+v, want %d metadata=%s blobs=%s", c, a, code, metaRes, blobRes)
		}
		if (code == 200) != (a.Status == "ready") {
			t.Fatalf("status %q with code %d", a.Status, code)
		}
	}
	want(200, "ok", "ok")

	in.FailAlways("meta.Repositories", syscall.EIO)
	want(503, "failed", "ok")
	in.Reset()
	want(200, "ok", "ok")

	in.FailAlways("blob.Stat", syscall.EIO)
	want(503, "ok", "failed")
	in.Reset()
	want(200, "ok", "ok")

	// A store that stops answering (a hung disk, a network store): the
	// probe gives up at its timeout, and while the check is still stuck
	// the next probe fails at once instead of piling up another.
	release := make(chan struct{})
	hang := newReadiness(nil, &check{name: "metadata", fn: func(context.Context) error { <-release; return nil }}, blobCheck(bs))
	// Long enough for the healthy blob check (a Stat) on a loaded
	// machine: only the hung check may read as a timeout.
	hang.timeout = 2 * time.Second
	if c, a := probe(t, hang); c != 503 || a.Checks["metadata"] != "timeout" || a.Checks["blobs"] != "ok" {
		t.Fatalf("hung store: %d %+v", c, a)
	}
	if c, a := probe(t, hang); c != 503 || a.Checks["metadata"] != "timeout" {
		t.Fatalf("still hung: %d %+v", c, a)
	}
	close(release)
	for hang.checks[0].busy.Load() {
		time.Sleep(time.Millisecond)
	}
	if c, a := probe(t, hang); c != 200 {
		t.Fatalf("after the store answers again: %d %+v", c, a)
	}
}

// TestReadyzServer: the real server's /readyz follows its real blob
// directory (a file where the blobs' directory was: every Stat fails
// with ENOTDIR) and its metadata store (closed), on the main handler.
func TestReadyzServer(t *testing.T) {
	cfg := testConfig(t)
	s := newServer(t, cfg, nil)
	h := s.Handler()
	if c, a := probe(t, h); c != 200 {
		t.Fatalf("fresh server: %d %+v", c, a)
	}
	blobs := filepath.Join(cfg.Storage.Dir, "blobs")
	if err := os.RemoveAll(blobs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blobs, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, a := probe(t, h); c != 503 || a.Checks["blobs"] != "failed" || a.Checks["metadata"] != "ok" {
		t.Fatalf("blob directory gone: %d %+v", c, a)
	}
	if err := os.Remove(blobs); err != nil {
		t.Fatal(err)
	}
	if c, a := probe(t, h); c != 200 {
		t.Fatalf("blob directory back: %d %+v", c, a)
	}
	s.meta.Close()
	if c, a := probe(t, h); c != 503 || a.Checks["metadata"] != "failed" {
		t.Fatalf("metadata closed: %d %+v", c, a)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/livez", nil))
	if rec.Code != 200 {
		t.Errorf("/livez while not ready: %d", rec.Code)
	}
}

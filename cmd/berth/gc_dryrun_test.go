package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/config"
	"github.com/berth-dev/berth/server"
)

// gc --dry-run prints what gc then does: here a chain of three untagged
// manifests (an index of an index of an image), which a real run deletes
// in three passes, and the blobs they free.
func TestGCDryRunMatchesTheRun(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "berth.yaml")
	data := filepath.Join(dir, "data")
	os.WriteFile(cfgFile, []byte("storage:\n  dir: "+data+"\ngc:\n  grace: 0s\n  untagged_after: 1ns\n"), 0o600)
	cfg, _, err := config.Load(cfgFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	put := func(method, path, ct string, body []byte) {
		req, _ := http.NewRequest(method, hs.URL+path, bytes.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("%s %s: %d", method, path, res.StatusCode)
		}
	}
	desc := func(mt string, b []byte) map[string]any {
		return map[string]any{"mediaType": mt, "digest": digest.FromBytes(b), "size": len(b)}
	}
	cfgBlob := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("a layer")
	for _, b := range [][]byte{cfgBlob, layer} {
		put("POST", "/v2/app/blobs/uploads/?digest="+digest.FromBytes(b).String(), "", b)
	}
	const imageType, indexType = "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json"
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": imageType,
		"config": desc("application/vnd.oci.image.config.v1+json", cfgBlob), "layers": []any{desc("application/vnd.oci.image.layer.v1.tar", layer)}})
	put("PUT", "/v2/app/manifests/"+digest.FromBytes(m).String(), imageType, m)
	child, childType := m, imageType
	for range 2 {
		idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": indexType, "manifests": []any{desc(childType, child)}})
		put("PUT", "/v2/app/manifests/"+digest.FromBytes(idx).String(), indexType, idx)
		child, childType = idx, indexType
	}
	hs.Close()
	srv.Close()

	counts := func(out, verb string) string {
		i := strings.Index(out, "gc "+verb+": ")
		if i < 0 {
			t.Fatalf("no %q in %q", "gc "+verb, out)
		}
		line := out[i+len("gc "+verb+": "):]
		return line[:strings.Index(line, "; in ")]
	}
	dry, err := run(t, "gc", "--config", cfgFile, "--dry-run")
	if err != nil {
		t.Fatalf("gc --dry-run: %v\n%s", err, dry)
	}
	real, err := run(t, "gc", "--config", cfgFile)
	if err != nil {
		t.Fatalf("gc: %v\n%s", err, real)
	}
	d, r := counts(dry, "would delete"), counts(real, "deleted")
	if !strings.HasPrefix(r, "3 manifests, 2 blob links, 2 blobs") {
		t.Errorf("gc: %q; want the chain of 3 manifests and its 2 blobs deleted", r)
	}
	if d != r {
		t.Errorf("gc --dry-run said %q; gc did %q", d, r)
	}
}

package gc

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/blob/fs"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/meta/sqlite"
	"github.com/berth-dev/berth/registry"
)

var _ Meta = (*sqlite.Store)(nil)
var _ Blobs = (*fs.Store)(nil)

// env is a registry over real stores in a temporary directory, behind a
// real HTTP server, with a Collector over the same stores.
type env struct {
	t     testing.TB
	dir   string
	blobs *fs.Store
	meta  *sqlite.Store
	srv   *httptest.Server
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	blobs, md := testutil.Stores(t, dir, logger)
	srv := httptest.NewServer(registry.New(blobs, md, registry.Options{}, logger))
	t.Cleanup(srv.Close)
	return &env{t: t, dir: dir, blobs: blobs, meta: md, srv: srv}
}

// collector returns a Collector whose clock runs ahead by skew.
func (e *env) collector(pol Policy, skew time.Duration) *Collector {
	c := New(e.meta, e.blobs, pol, nil)
	c.now = func() time.Time { return time.Now().Add(skew) }
	c.SetSnapshot(sqliteSnapshot(filepath.Join(e.dir, "meta.db")))
	return c
}

// sqliteSnapshot copies the SQLite database at path with VACUUM INTO, as
// berth gc --dry-run does (cmd/berth), and opens the copy.
func sqliteSnapshot(path string) Snapshot {
	return func(ctx context.Context) (Meta, func() error, error) {
		dir, err := os.MkdirTemp(filepath.Dir(path), ".gc-dry-run-")
		if err != nil {
			return nil, nil, err
		}
		dst := filepath.Join(dir, "meta.db")
		db, err := sql.Open("sqlite", path)
		if err == nil {
			_, err = db.ExecContext(ctx, "VACUUM INTO ?", dst)
			db.Close()
		}
		var md *sqlite.Store
		if err == nil {
			md, err = sqlite.Open(ctx, dst, nil)
		}
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		return md, func() error { err := md.Close(); os.RemoveAll(dir); return err }, nil
	}
}

func (e *env) run(c *Collector, dryRun bool) Report {
	e.t.Helper()
	r, err := c.Run(e.t.Context(), dryRun)
	if err != nil {
		e.t.Fatalf("gc: %v", err)
	}
	return r
}

// do sends a request and returns the status and body.
func (e *env) do(method, path string, body []byte, contentType string) (int, []byte, error) {
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	return res.StatusCode, data, err
}

func (e *env) must(method, path string, body []byte, contentType string, want int) []byte {
	e.t.Helper()
	code, data, err := e.do(method, path, body, contentType)
	if err != nil || code != want {
		e.t.Fatalf("%s %s = %d %s, %v; want %d", method, path, code, data, err, want)
	}
	return data
}

// manifest is a manifest and the blobs it needs.
type manifest struct {
	body      []byte
	mediaType string
	digest    digest.Digest
	blobs     [][]byte
}

func (m manifest) size() int64 {
	var n int64
	for _, b := range m.blobs {
		n += int64(len(b))
	}
	return n
}

func desc(mediaType string, data []byte) map[string]any {
	return map[string]any{"mediaType": mediaType, "digest": digest.FromBytes(data), "size": len(data)}
}

// newImage is an image with a config unique to name and the given layers.
// A subject, if not nil, makes it a referrer.
func newImage(name string, subject *manifest, layers ...[]byte) manifest {
	cfg := []byte(`{"architecture":"amd64","os":"linux","config":{"Labels":{"name":"` + name + `"}},"rootfs":{"type":"layers","diff_ids":[]}}`)
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        desc("application/vnd.oci.image.config.v1+json", cfg),
	}
	var ls []any
	for _, l := range layers {
		ls = append(ls, desc("application/vnd.oci.image.layer.v1.tar", l))
	}
	if ls == nil {
		ls = []any{}
	}
	m["layers"] = ls
	if subject != nil {
		m["subject"] = desc(subject.mediaType, subject.body)
		m["artifactType"] = "application/vnd.example.sig"
	}
	body, _ := json.Marshal(m)
	return manifest{body: body, mediaType: "application/vnd.oci.image.manifest.v1+json", digest: digest.FromBytes(body), blobs: append([][]byte{cfg}, layers...)}
}

func newIndex(children ...manifest) manifest {
	var ms []any
	for _, c := range children {
		d := desc(c.mediaType, c.body)
		d["platform"] = map[string]string{"os": "linux", "architecture": "amd64"}
		ms = append(ms, d)
	}
	body, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     ms,
	})
	return manifest{body: body, mediaType: "application/vnd.oci.image.index.v1+json", digest: digest.FromBytes(body)}
}

func (e *env) pushBlob(repo string, data []byte) {
	e.t.Helper()
	e.must("POST", "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(data).String(), data, "", http.StatusCreated)
}

// push uploads m's blobs and m under ref (a tag, or "" for its digest).
func (e *env) push(repo, ref string, m manifest) {
	e.t.Helper()
	for _, b := range m.blobs {
		e.pushBlob(repo, b)
	}
	if ref == "" {
		ref = m.digest.String()
	}
	e.must("PUT", "/v2/"+repo+"/manifests/"+ref, m.body, m.mediaType, http.StatusCreated)
}

// pull fetches ref and every blob of m, checking their digests.
func (e *env) pull(repo, ref string, m manifest) error {
	code, body, err := e.do("GET", "/v2/"+repo+"/manifests/"+ref, nil, "")
	if err != nil || code != http.StatusOK || !bytes.Equal(body, m.body) {
		return fmt.Errorf("manifest %s:%s: %d %.100s %v", repo, ref, code, body, err)
	}
	for _, b := range m.blobs {
		d := digest.FromBytes(b)
		code, body, err := e.do("GET", "/v2/"+repo+"/blobs/"+d.String(), nil, "")
		if err != nil || code != http.StatusOK || digest.FromBytes(body) != d {
			return fmt.Errorf("blob %s of %s:%s: %d %v", d, repo, ref, code, err)
		}
	}
	return nil
}

// files returns the blob files in the store and their total size.
func (e *env) files() (map[digest.Digest]int64, int64) {
	e.t.Helper()
	out := map[digest.Digest]int64{}
	var total int64
	err := e.blobs.Walk(e.t.Context(), func(i blob.Info) error {
		out[i.Digest] = i.Size
		total += i.Size
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out, total
}

func (e *env) hasFile(data []byte) bool {
	_, err := e.blobs.Stat(e.t.Context(), digest.FromBytes(data))
	return err == nil
}

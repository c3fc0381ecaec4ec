package registry

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob/fs"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/sqlite"
)

const (
	dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	dockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	ociIndex       = "application/vnd.oci.image.index.v1+json"
)

// TestDockerAndIndexFormats pushes a Docker v2.2 manifest and manifest list
// and an OCI index, and checks each is served with its own media type and
// bytes, and that index children need not be present.
func TestDockerAndIndexFormats(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	cfg := []byte(`{"architecture":"arm64","os":"linux","config":{}}`)
	layer := []byte("docker layer")
	tr.pushBlob("d", cfg)
	tr.pushBlob("d", layer)
	dm := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%d,"digest":"%s"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":%d,"digest":"%s"}]}`,
		dockerManifest, len(cfg), digest.FromBytes(cfg), len(layer), digest.FromBytes(layer))
	tr.expect(tr.do("PUT", "/v2/d/manifests/arm64", dm, "Content-Type", dockerManifest), 201, "")
	r := tr.do("GET", "/v2/d/manifests/arm64", nil, "Accept", dockerManifest)
	tr.expect(r, 200, "")
	if r.header.Get("Content-Type") != dockerManifest || string(r.body) != dm {
		t.Fatalf("docker manifest served as %q", r.header.Get("Content-Type"))
	}
	// Docker manifests must name their media type in the body.
	noType := fmt.Sprintf(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%d,"digest":"%s"},"layers":[]}`, len(cfg), digest.FromBytes(cfg))
	tr.expect(tr.do("PUT", "/v2/d/manifests/x", noType, "Content-Type", dockerManifest), 400, "MANIFEST_INVALID")

	missing := digest.FromString("never pushed")
	list := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","size":%d,"digest":"%s","platform":{"architecture":"arm64","os":"linux"}},{"mediaType":"%s","size":1,"digest":"%s","platform":{"architecture":"amd64","os":"linux"}}]}`,
		dockerList, dockerManifest, len(dm), digest.FromString(dm), dockerManifest, missing)
	tr.expect(tr.do("PUT", "/v2/d/manifests/multi", list, "Content-Type", dockerList), 201, "")
	r = tr.do("HEAD", "/v2/d/manifests/multi", nil)
	if r.header.Get("Content-Type") != dockerList || r.header.Get("Docker-Content-Digest") != digest.FromString(list).String() {
		t.Fatalf("manifest list headers %v", r.header)
	}

	idx := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","size":%d,"digest":"%s","platform":{"architecture":"arm64","os":"linux"}}],"annotations":{"org.opencontainers.image.title":"x"}}`,
		ociIndex, dockerManifest, len(dm), digest.FromString(dm))
	r = tr.do("PUT", "/v2/d/manifests/"+digest.SHA512.FromString(idx).String()+"?tag=idx&tag=idx2", idx, "Content-Type", ociIndex)
	tr.expect(r, 201, "")
	if got := r.header.Values("OCI-Tag"); len(got) != 2 || got[0] != "idx" || got[1] != "idx2" {
		t.Fatalf("OCI-Tag %v", got)
	}
	r = tr.do("GET", "/v2/d/manifests/idx2", nil)
	tr.expect(r, 200, "")
	if r.header.Get("Docker-Content-Digest") != digest.SHA512.FromString(idx).String() || string(r.body) != idx {
		t.Fatalf("sha512 index by tag: %v", r.header)
	}
	// What was recorded for the index: children with their platforms.
	m, err := tr.reg.meta.GetManifest(context.Background(), "d", digest.SHA512.FromString(idx))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Refs) != 1 || m.Refs[0].Platform != "linux/arm64" || m.Annotations["org.opencontainers.image.title"] != "x" {
		t.Fatalf("index facts %+v", m)
	}
	img, err := tr.reg.meta.GetManifest(context.Background(), "d", digest.FromString(dm))
	if err != nil {
		t.Fatal(err)
	}
	if img.OS != "linux" || img.Architecture != "arm64" || img.TotalSize != int64(len(dm)+len(cfg)+len(layer)) {
		t.Fatalf("image facts %+v", img)
	}
}

// TestUploadSurvivesRestart stops the registry in the middle of a chunked
// upload, opens the same directory again, and finishes the upload there.
func TestUploadSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() (*httptest.Server, func()) {
		logger := slog.New(slog.DiscardHandler)
		blobs, err := fs.New(filepath.Join(dir, "data"), logger)
		if err != nil {
			t.Fatal(err)
		}
		md, err := sqlite.Open(context.Background(), filepath.Join(dir, "meta.db"), logger)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(New(blobs, md, Options{}, logger))
		return srv, func() { srv.Close(); md.Close() }
	}
	data := make([]byte, 300_000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	srv, stop := open()
	tr := &testRegistry{t: t, srv: srv}
	r := tr.do("POST", "/v2/r/blobs/uploads/", nil)
	loc := r.header.Get("Location")
	tr.expect(tr.do("PATCH", loc, data[:100_001], "Content-Range", "0-100000"), 202, "")
	stop()

	srv, stop = open()
	defer stop()
	tr = &testRegistry{t: t, srv: srv}
	r = tr.do("GET", loc, nil)
	tr.expect(r, 204, "")
	if r.header.Get("Range") != "0-100000" {
		t.Fatalf("after restart: Range %q", r.header.Get("Range"))
	}
	tr.expect(tr.do("PATCH", loc, data[100_001:], "Content-Range", fmt.Sprintf("100001-%d", len(data)-1)), 202, "")
	d := digest.FromBytes(data)
	tr.expect(tr.do("PUT", loc+"?digest="+d.String(), nil), 201, "")
	r = tr.do("GET", "/v2/r/blobs/"+d.String(), nil)
	tr.expect(r, 200, "")
	if digest.FromBytes(r.body) != d {
		t.Fatal("blob differs after a restart mid-upload")
	}
}

type recorder struct{ got []string }

func (r *recorder) ManifestStored(_ context.Context, m *meta.Manifest, tags []string) {
	r.got = append(r.got, fmt.Sprintf("%s@%s %v %s", m.Repo, m.Digest, tags, m.Labels["seed"]))
}

func TestObservers(t *testing.T) {
	rec := &recorder{}
	tr := newTestRegistry(t, Options{Observers: []ManifestObserver{rec}})
	img := newImage(t, "observed")
	tr.push("r", "v1", img)
	tr.expect(tr.do("PUT", "/v2/r/manifests/"+digest.FromString("x").String(), img.manifest, "Content-Type", ociManifest), 400, "DIGEST_INVALID")
	want := fmt.Sprintf("r@%s [v1] observed", img.digest)
	if len(rec.got) != 1 || rec.got[0] != want {
		t.Fatalf("observed %q, want [%q]", rec.got, want)
	}
}

// TestIndexRepeatedChildren: an index that lists one child many times
// counts it once, and pushing it reads no child content per entry.
func TestIndexRepeatedChildren(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	img := newImage(t, "child")
	tr.push("r", "child", img)
	entry := fmt.Sprintf(`{"mediaType":"%s","size":%d,"digest":"%s","platform":{"architecture":"amd64","os":"linux"}}`, ociManifest, len(img.manifest), img.digest)
	entries := make([]string, 500)
	for i := range entries {
		entries[i] = entry
	}
	idx := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","manifests":[%s]}`, ociIndex, strings.Join(entries, ","))
	tr.expect(tr.do("PUT", "/v2/r/manifests/many", idx, "Content-Type", ociIndex), 201, "")
	child, err := tr.reg.meta.GetManifest(context.Background(), "r", img.digest)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tr.reg.meta.GetManifest(context.Background(), "r", digest.FromString(idx))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(idx)) + child.TotalSize; m.TotalSize != want {
		t.Fatalf("index TotalSize = %d, want %d (the child counted once)", m.TotalSize, want)
	}
}

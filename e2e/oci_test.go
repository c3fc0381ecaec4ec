package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// randomName returns n random hex characters (for repository names).
func randomName(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)[:n]
}

// writeLayerTar writes an uncompressed tar holding files (name → content),
// with a directory entry for each parent, and returns its path.
func writeLayerTar(t testing.TB, dir, name string, files map[string][]byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	mtime := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	seenDir := map[string]bool{}
	for _, n := range names {
		for d := filepath.Dir(n); d != "." && !seenDir[d]; d = filepath.Dir(d) {
			seenDir[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime}); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: mtime}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// readTar returns the regular files of a layer (gzip or plain tar).
func readTar(t testing.TB, mediaType string, r io.Reader) map[string][]byte {
	t.Helper()
	if strings.HasSuffix(mediaType, "gzip") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("layer %s: %v", mediaType, err)
		}
		defer zr.Close()
		r = zr
	} else if strings.HasSuffix(mediaType, "zstd") {
		t.Fatalf("layer media type %s: zstd is not expected from these clients", mediaType)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("reading layer tar: %v", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimPrefix(h.Name, "./")] = b
	}
}

// diffID is the digest of a layer's uncompressed tar.
func diffID(t testing.TB, mediaType string, blob []byte) digest.Digest {
	t.Helper()
	var r io.Reader = bytes.NewReader(blob)
	if strings.HasSuffix(mediaType, "gzip") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	d, err := digest.SHA256.FromReader(r)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// assertFiles checks that got holds exactly want.
func assertFiles(t testing.TB, what string, got, want map[string][]byte) {
	t.Helper()
	for n, w := range want {
		g, ok := got[n]
		if !ok {
			t.Errorf("%s: file %s missing (have %v)", what, n, keys(got))
			continue
		}
		if !bytes.Equal(g, w) {
			t.Errorf("%s: file %s differs: %d bytes, want %d", what, n, len(g), len(w))
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			t.Errorf("%s: unexpected file %s", what, n)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// verifyBytes checks that b matches a descriptor's size and digest.
func verifyBytes(t testing.TB, what string, desc v1.Descriptor, b []byte) {
	t.Helper()
	if err := desc.Digest.Validate(); err != nil {
		t.Fatalf("%s: descriptor digest %q: %v", what, desc.Digest, err)
	}
	if int64(len(b)) != desc.Size {
		t.Errorf("%s %s: %d bytes, descriptor says %d", what, desc.Digest, len(b), desc.Size)
	}
	if got := desc.Digest.Algorithm().FromBytes(b); got != desc.Digest {
		t.Errorf("%s: content hashes to %s, descriptor says %s", what, got, desc.Digest)
	}
}

// manifestDoc is an image manifest or an index, whichever the bytes are.
type manifestDoc struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Config       *v1.Descriptor    `json:"config,omitempty"`
	Layers       []v1.Descriptor   `json:"layers,omitempty"`
	Manifests    []v1.Descriptor   `json:"manifests,omitempty"`
	Subject      *v1.Descriptor    `json:"subject,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

func parseManifest(t testing.TB, b []byte) manifestDoc {
	t.Helper()
	var m manifestDoc
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("parsing manifest: %v\n%s", err, clip(b, 2000))
	}
	return m
}

func isIndex(mediaType string) bool {
	return mediaType == v1.MediaTypeImageIndex || mediaType == "application/vnd.docker.distribution.manifest.list.v2+json"
}

func isManifest(mediaType string) bool {
	return mediaType == v1.MediaTypeImageManifest || mediaType == "application/vnd.docker.distribution.manifest.v2+json"
}

// layout is an OCI image layout on disk whose every blob has been verified.
type layout struct {
	Dir   string
	Index v1.Index
	// Blobs counts the verified blobs (manifests, configs and layers).
	Blobs int
	// Files maps each image manifest digest to the files of its layers.
	Files map[digest.Digest]map[string][]byte
}

func (l *layout) blob(t testing.TB, d digest.Digest) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.Dir, "blobs", d.Algorithm().String(), d.Encoded()))
	if err != nil {
		t.Fatalf("layout %s: blob %s: %v", l.Dir, d, err)
	}
	return b
}

// verifyLayout reads an OCI image layout, walks every descriptor from
// index.json down (indexes, manifests, configs, layers), and checks that
// each blob is present with the size and digest its descriptor gives. It
// unpacks every layer so callers can compare files.
func verifyLayout(t testing.TB, dir string) *layout {
	t.Helper()
	l := &layout{Dir: dir, Files: map[digest.Digest]map[string][]byte{}}
	ol, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	if err != nil {
		t.Fatalf("not an OCI layout: %v", err)
	}
	if !bytes.Contains(ol, []byte(`"imageLayoutVersion"`)) {
		t.Fatalf("%s/oci-layout: %s", dir, ol)
	}
	ib, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(ib, &l.Index); err != nil {
		t.Fatalf("%s/index.json: %v", dir, err)
	}
	if len(l.Index.Manifests) == 0 {
		t.Fatalf("%s/index.json lists no manifests", dir)
	}
	seen := map[digest.Digest]bool{}
	var walk func(desc v1.Descriptor, depth int)
	walk = func(desc v1.Descriptor, depth int) {
		if depth > 4 {
			t.Fatalf("descriptors nested too deep at %s", desc.Digest)
		}
		b := l.blob(t, desc.Digest)
		verifyBytes(t, "layout blob "+desc.MediaType, desc, b)
		if !seen[desc.Digest] {
			seen[desc.Digest] = true
			l.Blobs++
		}
		switch {
		case isIndex(desc.MediaType):
			m := parseManifest(t, b)
			for _, c := range m.Manifests {
				walk(c, depth+1)
			}
		case isManifest(desc.MediaType):
			m := parseManifest(t, b)
			if m.Config == nil {
				t.Fatalf("manifest %s has no config", desc.Digest)
			}
			walk(*m.Config, depth+1)
			files := map[string][]byte{}
			for _, ld := range m.Layers {
				walk(ld, depth+1)
				for n, c := range readTar(t, ld.MediaType, bytes.NewReader(l.blob(t, ld.Digest))) {
					files[n] = c
				}
			}
			l.Files[desc.Digest] = files
		}
	}
	for _, d := range l.Index.Manifests {
		walk(d, 0)
	}
	return l
}

// registryClient makes direct HTTP requests to berth, for the checks no
// client command exposes (mount responses, repository scoping).
type registryClient struct {
	base string
	c    *http.Client
}

func newRegistryClient(addr string) *registryClient {
	return &registryClient{base: "http://" + addr, c: httpClient()}
}

func (rc *registryClient) do(t testing.TB, method, path string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, rc.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := rc.c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, b
}

// manifest GETs a manifest and checks the Docker-Content-Digest header
// against the bytes.
func (rc *registryClient) manifest(t testing.TB, repo, ref string) ([]byte, string) {
	t.Helper()
	resp, b := rc.do(t, http.MethodGet, fmt.Sprintf("/v2/%s/manifests/%s", repo, ref), map[string]string{
		"Accept": strings.Join([]string{v1.MediaTypeImageManifest, v1.MediaTypeImageIndex,
			"application/vnd.docker.distribution.manifest.v2+json",
			"application/vnd.docker.distribution.manifest.list.v2+json"}, ", "),
	})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest %s:%s: %s\n%s", repo, ref, resp.Status, clip(b, 2000))
	}
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != digest.FromBytes(b).String() {
		t.Errorf("GET manifest %s:%s: Docker-Content-Digest %s, body hashes to %s", repo, ref, h, digest.FromBytes(b))
	}
	return b, resp.Header.Get("Content-Type")
}

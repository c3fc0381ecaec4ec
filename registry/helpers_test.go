package registry

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/testutil"
)

// testRegistry is a Registry over real stores in a temporary directory,
// behind a real HTTP server.
type testRegistry struct {
	t   testing.TB
	srv *httptest.Server
	reg *Registry
}

func newTestRegistry(t testing.TB, opts Options) *testRegistry {
	t.Helper()
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	blobs, md := testutil.Stores(t, dir, logger)
	reg := New(blobs, md, opts, logger)
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return &testRegistry{t: t, srv: srv, reg: reg}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

// code returns the first error code of a spec error body.
func (r resp) code() string {
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if json.Unmarshal(r.body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

// do sends a request; body may be nil, a []byte or an io.Reader (sent
// chunked, without Content-Length).
func (tr *testRegistry) do(method, path string, body any, headers ...string) resp {
	tr.t.Helper()
	var rd io.Reader
	length := int64(-1)
	switch b := body.(type) {
	case nil:
		length = 0
	case []byte:
		rd, length = bytes.NewReader(b), int64(len(b))
	case string:
		rd, length = strings.NewReader(b), int64(len(b))
	case io.Reader:
		rd = b
	}
	u := path
	if !strings.HasPrefix(path, "http") {
		u = tr.srv.URL + path
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		tr.t.Fatal(err)
	}
	if length >= 0 {
		req.ContentLength = length
		if length == 0 {
			req.Body = http.NoBody
		}
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := tr.srv.Client().Do(req)
	if err != nil {
		tr.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		tr.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: data}
}

// expect fails the test unless r has the status (and the error code, if
// code is not empty).
func (tr *testRegistry) expect(r resp, status int, code string) {
	tr.t.Helper()
	if r.status != status || (code != "" && r.code() != code) {
		tr.t.Fatalf("got %d %s (%s), want %d %s", r.status, r.code(), r.body, status, code)
	}
	if status >= 400 && len(r.body) > 0 && r.code() == "" {
		tr.t.Fatalf("error %d without a spec error body: %s", status, r.body)
	}
}

// pushBlob uploads data monolithically into repo and returns its digest.
func (tr *testRegistry) pushBlob(repo string, data []byte) digest.Digest {
	tr.t.Helper()
	d := digest.FromBytes(data)
	r := tr.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), data)
	tr.expect(r, http.StatusCreated, "")
	return d
}

// image is a small OCI image: config, one layer, and its manifest.
type image struct {
	config, layer []byte
	manifest      []byte
	digest        digest.Digest
}

func newImage(t testing.TB, seed string) image {
	t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","config":{"Labels":{"seed":"` + seed + `"}},"rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("layer of " + seed)
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(cfg), "size": len(cfg)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromBytes(layer), "size": len(layer)}},
		"annotations":   map[string]string{"seed": seed},
	}
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return image{config: cfg, layer: layer, manifest: body, digest: digest.FromBytes(body)}
}

// push uploads the image's blobs and manifest under ref.
func (tr *testRegistry) push(repo, ref string, img image) {
	tr.t.Helper()
	tr.pushBlob(repo, img.config)
	tr.pushBlob(repo, img.layer)
	r := tr.do("PUT", "/v2/"+repo+"/manifests/"+ref, img.manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	tr.expect(r, http.StatusCreated, "")
}

// pull checks that ref in repo answers img, byte for byte, blobs included.
func (tr *testRegistry) pull(repo, ref string, img image) {
	tr.t.Helper()
	r := tr.do("GET", "/v2/"+repo+"/manifests/"+ref, nil)
	tr.expect(r, http.StatusOK, "")
	if !bytes.Equal(r.body, img.manifest) {
		tr.t.Fatalf("manifest %s:%s changed: %s", repo, ref, r.body)
	}
	for _, b := range [][]byte{img.config, img.layer} {
		r := tr.do("GET", "/v2/"+repo+"/blobs/"+digest.FromBytes(b).String(), nil)
		tr.expect(r, http.StatusOK, "")
		if !bytes.Equal(r.body, b) {
			tr.t.Fatalf("blob of %s:%s changed", repo, ref)
		}
	}
}

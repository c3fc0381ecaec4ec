package flatpak_test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/flatpak"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/meta/sqlite"
	"github.com/berth-dev/berth/registry"
)

// env is a registry and the Flatpak remote over real stores in a
// temporary directory, behind one real HTTP server, as berth serve wires
// them.
type env struct {
	t    testing.TB
	srv  *httptest.Server
	md   *sqlite.Store
	h    *flatpak.Handler
	logs *syncBuffer
	log  *slog.Logger
}

func (e *env) logger() *slog.Logger { return e.log }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t testing.TB, opts flatpak.Options) *env {
	t.Helper()
	return newEnvIcons(t, opts, true)
}

// newEnvWithout is newEnv without an IconRecorder watching pushes.
func newEnvWithout(t testing.TB, opts flatpak.Options) *env {
	t.Helper()
	return newEnvIcons(t, opts, false)
}

func newEnvIcons(t testing.TB, opts flatpak.Options, recordIcons bool) *env {
	t.Helper()
	dir := t.TempDir()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	blobs, md := testutil.Stores(t, dir, logger)
	var observers []registry.ManifestObserver
	if recordIcons {
		observers = append(observers, flatpak.NewIconRecorder(md, logger))
	}
	reg := registry.New(blobs, md, registry.Options{Observers: observers}, logger)
	h := flatpak.New(md, opts, logger)
	mux := http.NewServeMux()
	mux.Handle("/v2/", reg)
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, md: md, h: h, logs: logs, log: logger}
}

// do sends a request and returns the response with its body read (and
// not decompressed).
func (e *env) do(method, path string, body []byte, headers ...string) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	// A transport that neither asks for nor undoes gzip by itself.
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res, b
}

func (e *env) pushBlob(repo string, data []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(data)
	res, body := e.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), data)
	if res.StatusCode != http.StatusCreated {
		e.t.Fatalf("push blob: %s %s", res.Status, body)
	}
	return d
}

// img describes a test image: its config's platform and labels, and its
// manifest's annotations.
type img struct {
	os, arch    string
	labels      map[string]string
	annotations map[string]string
	seed        string // makes the layer (and so the digest) unique
	config      []byte // if set, the config blob as is
}

// push pushes an image to repo with the given tags (the first in the
// path, the others with ?tag=) and returns its digest. No tags: pushed by
// digest.
func (e *env) push(repo string, im img, tags ...string) digest.Digest {
	e.t.Helper()
	if im.os == "" {
		im.os = "linux"
	}
	if im.arch == "" {
		im.arch = "amd64"
	}
	cfg, err := json.Marshal(map[string]any{
		"os": im.os, "architecture": im.arch,
		"config": map[string]any{"Labels": im.labels},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if im.config != nil {
		cfg = im.config
	}
	layer := []byte("layer " + im.seed + " " + im.arch)
	cd, ld := e.pushBlob(repo, cfg), e.pushBlob(repo, layer)
	man, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": len(layer)}},
		"annotations":   im.annotations,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.putManifest(repo, "application/vnd.oci.image.manifest.v1+json", man, tags...)
}

func (e *env) putManifest(repo, mediaType string, man []byte, tags ...string) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(man)
	ref, q := d.String(), ""
	if len(tags) > 0 {
		ref = tags[0]
		for _, t := range tags[1:] {
			if q == "" {
				q = "?tag=" + t
			} else {
				q += "&tag=" + t
			}
		}
	}
	res, body := e.do("PUT", "/v2/"+repo+"/manifests/"+ref+q, man, "Content-Type", mediaType)
	if res.StatusCode != http.StatusCreated {
		e.t.Fatalf("push manifest %s:%s: %s %s", repo, ref, res.Status, body)
	}
	return d
}

// pushIndex pushes an OCI index of children (already pushed, with their
// platforms) and returns its digest.
func (e *env) pushIndex(repo string, children map[digest.Digest]string, order []digest.Digest, tags ...string) digest.Digest {
	e.t.Helper()
	var ms []any
	for _, d := range order {
		res, body := e.do("GET", "/v2/"+repo+"/manifests/"+d.String(), nil)
		if res.StatusCode != http.StatusOK {
			e.t.Fatalf("get child %s: %s", d, res.Status)
		}
		osName, arch, _ := strings.Cut(children[d], "/")
		ms = append(ms, map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": len(body),
			"platform": map[string]any{"os": osName, "architecture": arch},
		})
	}
	man, err := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": ms,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.putManifest(repo, "application/vnd.oci.image.index.v1+json", man, tags...)
}

func (e *env) deleteTag(repo, tag string) {
	e.t.Helper()
	res, body := e.do("DELETE", "/v2/"+repo+"/manifests/"+tag, nil)
	if res.StatusCode != http.StatusAccepted {
		e.t.Fatalf("delete %s:%s: %s %s", repo, tag, res.Status, body)
	}
}

// The index JSON, decoded strictly enough to see nulls.
type indexJSON struct {
	Registry *string `json:"Registry"`
	Results  []struct {
		Name   string      `json:"Name"`
		Images []imageJSON `json:"Images"`
		Lists  []struct {
			Digest    string      `json:"Digest"`
			MediaType string      `json:"MediaType"`
			Images    []imageJSON `json:"Images"`
			Tags      []string    `json:"Tags"`
		} `json:"Lists"`
	} `json:"Results"`
}

type imageJSON struct {
	Digest       string            `json:"Digest"`
	MediaType    string            `json:"MediaType"`
	OS           string            `json:"OS"`
	Architecture string            `json:"Architecture"`
	Tags         []string          `json:"Tags"`
	Annotations  map[string]string `json:"Annotations"`
	Labels       map[string]string `json:"Labels"`
}

// index GETs /index/static?query (with gzip) and returns the response,
// the decompressed body and the decoded JSON. It fails the test on a
// status other than 200 or on a body that breaks the protocol's rules
// (a null array, a missing Registry).
func (e *env) index(query string, headers ...string) (*http.Response, []byte, indexJSON) {
	e.t.Helper()
	res, body := e.do("GET", "/index/static?"+query, nil, append([]string{"Accept-Encoding", "gzip"}, headers...)...)
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /index/static?%s: %s %s", query, res.Status, body)
	}
	if res.Header.Get("Content-Encoding") != "gzip" {
		e.t.Fatalf("GET /index/static?%s: Content-Encoding %q, want gzip", query, res.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		e.t.Fatal(err)
	}
	return res, plain, checkIndexJSON(e.t, plain)
}

func checkIndexJSON(t testing.TB, plain []byte) indexJSON {
	t.Helper()
	for _, null := range []string{`"Images":null`, `"Lists":null`, `"Results":null`, `"Tags":null`, `"Labels":null`, `"Annotations":null`} {
		if bytes.Contains(plain, []byte(null)) {
			t.Fatalf("index holds %s: %s", null, plain)
		}
	}
	var ij indexJSON
	if err := json.Unmarshal(plain, &ij); err != nil {
		t.Fatalf("index is not JSON: %v\n%s", err, plain)
	}
	if ij.Registry == nil || ij.Results == nil {
		t.Fatalf("index without Registry or Results: %s", plain)
	}
	for _, r := range ij.Results {
		if r.Images == nil || r.Lists == nil {
			t.Fatalf("result %s without Images or Lists: %s", r.Name, plain)
		}
		for _, im := range r.Images {
			if im.Tags == nil || im.Labels == nil || im.Annotations == nil || im.OS == "" || im.Architecture == "" || im.MediaType == "" {
				t.Fatalf("image %s misses a field: %s", im.Digest, plain)
			}
		}
		for _, l := range r.Lists {
			if l.Images == nil || l.Tags == nil {
				t.Fatalf("list %s misses a field: %s", l.Digest, plain)
			}
		}
	}
	return ij
}

// digests lists "repo@digest" for images and "repo@list>digest" for list
// images, in the answer's order.
func (ij indexJSON) digests() []string {
	out := []string{}
	for _, r := range ij.Results {
		for _, im := range r.Images {
			out = append(out, r.Name+"@"+im.Digest)
		}
		for _, l := range r.Lists {
			for _, im := range l.Images {
				out = append(out, r.Name+"@"+l.Digest+">"+im.Digest)
			}
		}
	}
	return out
}

// pngOf encodes a w×h PNG.
func pngOf(t testing.TB, w, h int, c color.Color) []byte {
	t.Helper()
	return testutil.PNG(t, w, h, c)
}

func dataURI(b []byte) string { return "data:image/png;base64," + base64.StdEncoding.EncodeToString(b) }

// flatpakLabels are the labels of a Flatpak app image for ref
// app/<id>/x86_64/stable, as build-bundle writes the ones the index needs.
func flatpakLabels(id string, extra ...string) map[string]string {
	l := map[string]string{
		flatpak.LabelRef:             "app/" + id + "/x86_64/stable",
		flatpak.LabelMetadata:        fmt.Sprintf("[Application]\nname=%s\nruntime=org.berth.Platform/x86_64/1\ncommand=run\n", id),
		"org.flatpak.installed-size": "8192",
		"org.flatpak.download-size":  "3440",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

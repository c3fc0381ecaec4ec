package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"image/color"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/flatpak"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/meta/sqlite"
	"github.com/berth-dev/berth/registry"
)

// site is the catalogue wired as berth serve wires it, over real stores in
// a temporary directory: the registry (with the icon recorder the Flatpak
// remote uses), the Flatpak remote and the catalogue, behind httptest.
type site struct {
	t   testing.TB
	srv *httptest.Server
	md  *sqlite.Store
	web *Handler
}

func newSite(t testing.TB, opts Options) *site {
	t.Helper()
	return newSiteIcons(t, opts, true)
}

// newSiteWithout is newSite without the icon recorder.
func newSiteWithout(t testing.TB, opts Options) *site {
	t.Helper()
	return newSiteIcons(t, opts, false)
}

func newSiteIcons(t testing.TB, opts Options, recordIcons bool) *site {
	t.Helper()
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	blobs, md := testutil.Stores(t, dir, logger)
	var observers []registry.ManifestObserver
	if recordIcons {
		observers = append(observers, flatpak.NewIconRecorder(md, logger))
	}
	reg := registry.New(blobs, md, registry.Options{Observers: observers}, logger)
	cat, err := New(md, blobs, opts, logger)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v2/", reg)
	flatpak.New(md, flatpak.Options{}, logger).Register(mux)
	mux.Handle("/", cat)
	mux.Handle("/api/v1/", cat)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &site{t: t, srv: srv, md: md, web: cat}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (s *site) do(method, path string, body []byte, headers ...string) response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := s.srv.Client().Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: string(b)}
}

// get fetches a page and fails the test unless it answers want.
func (s *site) get(path string, want int) response {
	s.t.Helper()
	r := s.do(http.MethodGet, path, nil)
	if r.status != want {
		s.t.Fatalf("GET %s: %d, want %d\n%s", path, r.status, want, clip(r.body))
	}
	return r
}

func clip(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "…"
	}
	return s
}

func (s *site) blob(repo string, data []byte) digest.Digest {
	s.t.Helper()
	d := digest.FromBytes(data)
	if r := s.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), data); r.status != http.StatusCreated {
		s.t.Fatalf("push blob to %s: %d %s", repo, r.status, r.body)
	}
	return d
}

func (s *site) manifest(repo, ref, mediaType string, body []byte) digest.Digest {
	s.t.Helper()
	if r := s.do(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, body, "Content-Type", mediaType); r.status != http.StatusCreated {
		s.t.Fatalf("push manifest %s:%s: %d %s", repo, ref, r.status, r.body)
	}
	return digest.FromBytes(body)
}

// img describes an image to push.
type img struct {
	arch        string // default amd64
	variant     string
	labels      map[string]string
	annotations map[string]string
	created     time.Time
	history     []map[string]any
	layer       string // layer content; default derived from the labels
}

const (
	mtManifest = "application/vnd.oci.image.manifest.v1+json"
	mtIndex    = "application/vnd.oci.image.index.v1+json"
	mtConfig   = "application/vnd.oci.image.config.v1+json"
	mtLayer    = "application/vnd.oci.image.layer.v1.tar"
)

func descriptor(mediaType string, data []byte) map[string]any {
	return map[string]any{"mediaType": mediaType, "digest": digest.FromBytes(data), "size": len(data)}
}

// push pushes im to repo under each tag (by digest when there is none).
func (s *site) push(repo string, im img, tags ...string) digest.Digest {
	s.t.Helper()
	if im.arch == "" {
		im.arch = "amd64"
	}
	layer := []byte(im.layer)
	if im.layer == "" {
		layer = fmt.Appendf(nil, "layer %s %v %s", repo, im.labels, im.arch)
	}
	cfg := map[string]any{
		"architecture": im.arch, "os": "linux",
		"config": map[string]any{"Labels": im.labels},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest.FromBytes(layer).String()}},
	}
	if im.variant != "" {
		cfg["variant"] = im.variant
	}
	if !im.created.IsZero() {
		cfg["created"] = im.created.Format(time.RFC3339Nano)
	}
	if im.history != nil {
		cfg["history"] = im.history
	}
	cfgBytes, err := json.Marshal(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	s.blob(repo, cfgBytes)
	s.blob(repo, layer)
	m := map[string]any{
		"schemaVersion": 2, "mediaType": mtManifest,
		"config": descriptor(mtConfig, cfgBytes),
		"layers": []any{descriptor(mtLayer, layer)},
	}
	if im.annotations != nil {
		m["annotations"] = im.annotations
	}
	body, err := json.Marshal(m)
	if err != nil {
		s.t.Fatal(err)
	}
	d := digest.FromBytes(body)
	if len(tags) == 0 {
		return s.manifest(repo, d.String(), mtManifest, body)
	}
	for _, tag := range tags {
		s.manifest(repo, tag, mtManifest, body)
	}
	return d
}

// index pushes an index of children (digest → platform "os/arch[/variant]").
func (s *site) index(repo, tag string, children ...any) digest.Digest {
	s.t.Helper()
	var ms []any
	for i := 0; i+1 < len(children); i += 2 {
		d := children[i].(digest.Digest)
		parts := strings.Split(children[i+1].(string), "/")
		p := map[string]any{"os": parts[0], "architecture": parts[1]}
		if len(parts) > 2 {
			p["variant"] = parts[2]
		}
		r := s.do(http.MethodGet, "/v2/"+repo+"/manifests/"+d.String(), nil, "Accept", mtManifest)
		ms = append(ms, map[string]any{"mediaType": mtManifest, "digest": d, "size": len(r.body), "platform": p})
	}
	body, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mtIndex, "manifests": ms})
	if err != nil {
		s.t.Fatal(err)
	}
	return s.manifest(repo, tag, mtIndex, body)
}

// referrer pushes an artifact whose subject is subject.
func (s *site) referrer(repo string, subject digest.Digest, artifactType string, annotations map[string]string) digest.Digest {
	s.t.Helper()
	empty := []byte("{}")
	s.blob(repo, empty)
	payload := []byte("payload of " + artifactType)
	s.blob(repo, payload)
	r := s.do(http.MethodGet, "/v2/"+repo+"/manifests/"+subject.String(), nil, "Accept", mtManifest+","+mtIndex)
	m := map[string]any{
		"schemaVersion": 2, "mediaType": mtManifest, "artifactType": artifactType,
		"config":  descriptor("application/vnd.oci.empty.v1+json", empty),
		"layers":  []any{descriptor("application/octet-stream", payload)},
		"subject": map[string]any{"mediaType": r.header.Get("Content-Type"), "digest": subject, "size": len(r.body)},
	}
	if annotations != nil {
		m["annotations"] = annotations
	}
	body, err := json.Marshal(m)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.manifest(repo, digest.FromBytes(body).String(), mtManifest, body)
}

// pngURI is a data: URI of a size×size PNG filled with c.
func pngURI(t testing.TB, size int, c color.RGBA) string {
	t.Helper()
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(testutil.PNG(t, size, size, c))
}

// app describes a Flatpak app or runtime image's labels.
type app struct {
	kind, id, arch, branch string
	appdata                string // AppStream XML; "" for none
	metadata               string // keyfile; default a minimal one
	icon                   color.RGBA
	noIcon                 bool
}

func (a app) labels(t testing.TB) map[string]string {
	if a.kind == "" {
		a.kind = "app"
	}
	if a.arch == "" {
		a.arch = "x86_64"
	}
	if a.branch == "" {
		a.branch = "stable"
	}
	md := a.metadata
	if md == "" {
		group := "Application"
		if a.kind == "runtime" {
			group = "Runtime"
		}
		md = "[" + group + "]\nname=" + a.id + "\nruntime=org.example.Platform/" + a.arch + "/1\nsdk=org.example.Sdk/" + a.arch + "/1\ncommand=run\n\n[Context]\nshared=network;ipc;\nsockets=wayland;\n"
	}
	l := map[string]string{
		flatpak.LabelRef:           a.kind + "/" + a.id + "/" + a.arch + "/" + a.branch,
		flatpak.LabelMetadata:      md,
		flatpak.LabelInstalledSize: "123456789",
		flatpak.LabelDownloadSize:  "45678901",
	}
	if a.appdata != "" {
		l[flatpak.LabelAppdata] = a.appdata
	}
	if !a.noIcon {
		c := a.icon
		if c.A == 0 {
			c = color.RGBA{R: 30, G: 160, B: 90, A: 255}
		}
		l[flatpak.LabelIcon64] = pngURI(t, 64, c)
		l[flatpak.LabelIcon128] = pngURI(t, 128, c)
	}
	return l
}

// appdata is AppStream XML for an app; the text is escaped for XML, so
// hostile strings arrive in the parsed data as they are.
func appdata(id, name, summary, description string, keywords ...string) string {
	esc := func(s string) string {
		var b strings.Builder
		_ = xml.EscapeText(&b, []byte(s))
		return b.String()
	}
	name, summary, description = esc(name), esc(summary), esc(description)
	var kw strings.Builder
	for _, k := range keywords {
		kw.WriteString("<keyword>" + k + "</keyword>")
	}
	return `<?xml version="1.0" encoding="UTF-8"?>
<components version="0.8" origin="flatpak"><component type="desktop-application">
<id>` + id + `</id><name>` + name + `</name><summary>` + summary + `</summary>
<developer_name>Example Developers</developer_name>
<description><p>` + description + `</p></description>
<project_license>GPL-3.0-or-later</project_license>
<url type="homepage">https://example.org/` + id + `</url>
<keywords>` + kw.String() + `</keywords>
<categories><category>Utility</category></categories>
<releases><release version="3.1" date="2026-02-03"/><release version="3.0" date="2025-12-01"/></releases>
</component></components>`
}

// apiSearch calls the search API and decodes the answer.
func (s *site) apiSearch(query string) searchResponse {
	s.t.Helper()
	r := s.get("/api/v1/search?"+query, http.StatusOK)
	var out searchResponse
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		s.t.Fatalf("search %s: %v\n%s", query, err, r.body)
	}
	return out
}

func ids(r searchResponse) []string {
	out := make([]string, len(r.Results))
	for i, x := range r.Results {
		out[i] = x.ID
	}
	return out
}

// htmlQ is shellQuote(v) as html/template writes it into a page.
func htmlQ(v string) string {
	return "&#39;" + strings.ReplaceAll(v, "'", `&#39;\&#39;&#39;`) + "&#39;"
}

package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/config"
	"github.com/berth-dev/berth/flatpak"
	"github.com/berth-dev/berth/meta"
)

func testConfig(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.Storage.Dir = t.TempDir()
	cfg.GC.Interval = 0
	return cfg
}

func iconURI(t *testing.T, size int) string {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewRGBA(image.Rect(0, 0, size, size))); err != nil {
		t.Fatal(err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes())
}

func appLabels(t *testing.T) map[string]string {
	return map[string]string{
		flatpak.LabelRef:      "app/org.x.App/x86_64/stable",
		flatpak.LabelMetadata: "[Application]\nname=org.x.App\n",
		flatpak.LabelIcon64:   iconURI(t, 64),
	}
}

func newServer(t *testing.T, cfg config.Config, logs io.Writer) *Server {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	s, err := New(t.Context(), cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// A healthy store answers /readyz at once, but on a loaded machine
	// (-race, parallel packages) a query can outlast the 800 ms
	// probeTimeout; the timeout itself is tested with a hung check
	// (TestReadyzFollowsTheStores).
	s.ready.timeout = 10 * time.Second
	return s
}

// push pushes a one-layer image with labels through the server's handler.
func push(t *testing.T, srv *httptest.Server, repo, tag string, labels map[string]string) digest.Digest {
	t.Helper()
	put := func(method, path, ct string, body []byte) {
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("%s %s: %s", method, path, res.Status)
		}
	}
	cfg, _ := json.Marshal(map[string]any{"os": "linux", "architecture": "amd64", "config": map[string]any{"Labels": labels},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{}}})
	layer := []byte("layer")
	for _, b := range [][]byte{cfg, layer} {
		put("POST", "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), "", b)
	}
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(cfg), "size": len(cfg)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromBytes(layer), "size": len(layer)}},
	})
	put("PUT", "/v2/"+repo+"/manifests/"+tag, "application/vnd.oci.image.manifest.v1+json", man)
	return digest.FromBytes(man)
}

// TestIconsRecordedWithFlatpakOff: icons are recorded at push even with the
// Flatpak remote off (the catalogue shows them, and a remote turned on
// later has them), and the catalogue then offers no link to the remote.
func TestIconsRecordedWithFlatpakOff(t *testing.T) {
	cfg := testConfig(t)
	cfg.Flatpak.Enabled = false
	s := newServer(t, cfg, nil)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	d := push(t, srv, "app", "latest", appLabels(t))
	key := meta.ManifestKey{Repo: "app", Digest: d}
	icons, err := s.meta.ManifestIcons(t.Context(), key)
	if err != nil || len(icons[key]) != 1 {
		t.Errorf("icons recorded with flatpak.enabled false: %v, %v", icons, err)
	}
	res, err := srv.Client().Get(srv.URL + "/apps/org.x.App")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || strings.Contains(string(body), "flatpakref") || strings.Contains(string(body), "berth.flatpakrepo") {
		t.Errorf("app page with the remote off: %s, links to it: %v", res.Status, strings.Contains(string(body), "flatpak"))
	}
	// The icon the page shows is served (it was a 404 with the remote off,
	// found by review); the remote's own routes are not.
	m := regexp.MustCompile(`src="(/icons/[0-9a-f]{64}\.png)"`).FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("app page shows no icon: %s", body)
	}
	for path, want := range map[string]int{m[1]: http.StatusOK, "/index/static": http.StatusNotFound, "/berth.flatpakrepo": http.StatusNotFound} {
		res, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s with the remote off: %s, want %d", path, res.Status, want)
		}
		if want == http.StatusOK && (res.Header.Get("Content-Type") != "image/png" || len(b) == 0) {
			t.Errorf("GET %s: %s, %d bytes", path, res.Header.Get("Content-Type"), len(b))
		}
	}
}

// TestIconBackfillAtStart: icons of manifests stored before the recorder
// saw them are recorded by the start-up backfill.
func TestIconBackfillAtStart(t *testing.T) {
	cfg := testConfig(t)
	st, err := OpenStores(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	content := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","x":1}`)
	m := &meta.Manifest{Repo: "app", Digest: digest.FromBytes(content), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Content: content, OS: "linux", Architecture: "amd64", Labels: appLabels(t)}
	if err := st.Meta.PutManifest(t.Context(), m, "latest"); err != nil {
		t.Fatal(err)
	}
	st.Close()

	s := newServer(t, cfg, nil)
	key := meta.ManifestKey{Repo: "app", Digest: m.Digest}
	if icons, _ := s.meta.ManifestIcons(t.Context(), key); len(icons) != 0 {
		t.Fatalf("icons before the backfill: %v", icons)
	}
	s.backfillIcons(t.Context())
	if icons, err := s.meta.ManifestIcons(t.Context(), key); err != nil || len(icons[key]) != 1 {
		t.Errorf("icons after the backfill: %v, %v", icons, err)
	}
}

// TestWarnsWithoutPublicURL: with the remote on and no public URL, the
// start-up log says what that means behind a proxy.
func TestWarnsWithoutPublicURL(t *testing.T) {
	for _, public := range []string{"", "https://registry.example.com"} {
		cfg := testConfig(t)
		cfg.Flatpak.PublicURL = public
		var logs bytes.Buffer
		newServer(t, cfg, &logs)
		warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "flatpak.public_url is not set")
		if warned != (public == "") {
			t.Errorf("public_url %q: warned = %v\n%s", public, warned, logs.String())
		}
	}
}

// TestPolicyFromConfig: the gc keys reach the collector's policy.
func TestPolicyFromConfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.GC.ClaimLease, cfg.GC.Grace, cfg.GC.UntaggedAfter, cfg.Uploads.ExpireAfter = 3*time.Minute, time.Minute, time.Hour, 2*time.Hour
	p := GCPolicy(cfg)
	if p.ClaimLease != 3*time.Minute || p.Grace != time.Minute || p.UntaggedAfter != time.Hour || p.UploadExpireAfter != 2*time.Hour {
		t.Errorf("GCPolicy = %+v", p)
	}
	d := DeltaOptions(cfg)
	if d.Versions != cfg.Flatpak.Deltas.Versions || d.Window != cfg.Flatpak.Deltas.Window || d.TempDir != DeltaTempDir(cfg) {
		t.Errorf("DeltaOptions = %+v", d)
	}
	cfg.Flatpak.Deltas.Window, cfg.Flatpak.Deltas.RetireAfter = 0, 0
	if d := DeltaOptions(cfg); d.Window >= 0 || d.RetireAfter >= 0 {
		t.Errorf("window and retire_after 0 (no limit, at once) = %v, %v: want negative (delta's spelling)", d.Window, d.RetireAfter)
	}
}

// TestRoutesOnOneMux: the registry, the Flatpak remote (method patterns),
// the catalogue and the probes share the server's mux without a conflict;
// each path reaches its handler, and a method a side door does not serve
// is 405 with an Allow header naming GET and HEAD.
func TestRoutesOnOneMux(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		cfg := testConfig(t)
		cfg.Flatpak.Enabled = enabled
		s := newServer(t, cfg, nil)
		srv := httptest.NewServer(s.Handler())
		push(t, srv, "app", "latest", appLabels(t))
		do := func(method, path string) (*http.Response, string) {
			t.Helper()
			req, _ := http.NewRequest(method, srv.URL+path, nil)
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			return res, string(body)
		}
		flatpakStatus := http.StatusNotFound // the catalogue's page
		if enabled {
			flatpakStatus = http.StatusOK
		}
		for _, tc := range []struct {
			path   string
			status int
			has    string // in the body
		}{
			{"/v2/", http.StatusOK, "{}"},
			{"/v2/app/tags/list", http.StatusOK, "latest"},
			{flatpak.IndexStaticPath + "?tag=latest", flatpakStatus, ""},
			{flatpak.IndexDynamicPath + "?tag=latest", flatpakStatus, ""},
			{flatpak.RepoFilePath, flatpakStatus, ""},
			{flatpak.FlatpakrefPath("app", "latest"), flatpakStatus, ""},
			{"/icons/" + strings.Repeat("0", 64) + ".png", http.StatusNotFound, ""},
			{"/", http.StatusOK, "<html"},
			{"/apps/org.x.App", http.StatusOK, "org.x.App"},
			{"/api/v1/search?q=x", http.StatusOK, `"results"`},
			{"/livez", http.StatusOK, ""},
			{"/no/such/page", http.StatusNotFound, "<html"},
		} {
			res, body := do("GET", tc.path)
			if res.StatusCode != tc.status || !strings.Contains(body, tc.has) {
				t.Errorf("flatpak %v: GET %s: %s %.80q; want %d with %q", enabled, tc.path, res.Status, body, tc.status, tc.has)
			}
			if res.Header.Get("X-Content-Type-Options") != "nosniff" && !strings.HasPrefix(tc.path, "/v2") && tc.path != "/livez" {
				t.Errorf("flatpak %v: GET %s without X-Content-Type-Options", enabled, tc.path)
			}
			if strings.HasPrefix(tc.path, "/v2") || tc.path == "/livez" {
				continue
			}
			for _, m := range []string{"POST", "PUT", "DELETE"} {
				res, _ := do(m, tc.path)
				allow := strings.Split(res.Header.Get("Allow"), ", ")
				if res.StatusCode != http.StatusMethodNotAllowed || !slices.Contains(allow, "GET") || !slices.Contains(allow, "HEAD") {
					t.Errorf("flatpak %v: %s %s: %s, Allow %q; want 405, GET and HEAD", enabled, m, tc.path, res.Status, res.Header.Get("Allow"))
				}
			}
		}
		if res, body := do("POST", "/v2/"); res.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(body, "UNSUPPORTED") {
			t.Errorf("flatpak %v: POST /v2/: %s %s", enabled, res.Status, body)
		}
		srv.Close()
	}
}

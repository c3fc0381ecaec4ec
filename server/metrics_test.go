package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-dev/berth/config"
)

// sample is one series of a Prometheus text exposition.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// parseMetrics reads the text exposition format (comments skipped).
func parseMetrics(t testing.TB, body string) []sample {
	t.Helper()
	var out []sample
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad value in %q: %v", line, err)
		}
		series := line[:i]
		s := sample{name: series, labels: map[string]string{}, value: v}
		if j := strings.IndexByte(series, '{'); j >= 0 {
			s.name = series[:j]
			for _, m := range labelRE.FindAllStringSubmatch(series[j:], -1) {
				s.labels[m[1]] = m[2]
			}
		}
		out = append(out, s)
	}
	return out
}

// value sums the series named name whose labels include want; found is
// false if there are none.
func value(ss []sample, name string, want map[string]string) (sum float64, found bool) {
	for _, s := range ss {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range want {
			if s.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			sum += s.value
			found = true
		}
	}
	return sum, found
}

type L = map[string]string

func do(t testing.TB, c *http.Client, method, url string, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, b
}

func TestRoutePattern(t *testing.T) {
	const name = "acme/secret-project/zz9"
	tests := map[string]string{
		"/v2/":                                   "/v2/",
		"/v2":                                    "/v2/",
		"/v2/_catalog":                           "/v2/_catalog",
		"/v2/" + name + "/manifests/v1":          routeManifest,
		"/v2/" + name + "/manifests/sha256:abc":  routeManifest,
		"/v2/" + name + "/blobs/sha256:abc":      routeBlob,
		"/v2/" + name + "/blobs/uploads/":        routeUploadStart,
		"/v2/" + name + "/blobs/uploads/abc-123": routeUpload,
		"/v2/" + name + "/tags/list":             routeTags,
		"/v2/" + name + "/referrers/sha256:abc":  routeReferrers,
		"/v2/" + name + "/nothing":               "other",
		"/v2/x":                                  "other",
		"/":                                      "/",
		"/api/v1/search":                         "/api/v1/search",
		"/api/v1/" + name:                        "other",
		"/index/static":                          "/index/static",
		"/index/dynamic":                         "/index/dynamic",
		"/icons/sha256:abc":                      "/icons/<path>",
		"/flatpakref/" + name + "/x.flatpakref":  "/flatpakref/<path>",
		"/apps/org.x.App":                        "/apps/<path>",
		"/repositories/" + name:                  "/repositories/<path>",
		"/repositories/":                         "/repositories",
		"/static/app.css":                        "/static/<path>",
		"/auth/token":                            "/auth/token",
		"/metrics":                               "/metrics",
		"/livez":                                 "/livez",
		"/readyz":                                "/readyz",
		"/" + name:                               "other",
		"/wp-admin.php":                          "other",
	}
	for p, want := range tests {
		got := routePattern(p)
		if got != want {
			t.Errorf("routePattern(%q) = %q, want %q", p, got, want)
		}
		if strings.Contains(got, "secret") || strings.Contains(got, "abc") || strings.Contains(got, "org.x") {
			t.Errorf("routePattern(%q) = %q names what the request named", p, got)
		}
	}
}

// TestMetricsAfterRequests scrapes /metrics after a known sequence of
// requests: counts by route and status, bytes in and out, an upload in
// progress, the store totals, a gc run and its freed bytes, build info;
// and the repository names never appear.
func TestMetricsAfterRequests(t *testing.T) {
	cfg := testConfig(t)
	cfg.GC.Grace = 0 // the gc run below frees the unreferenced blob at once
	s := newServer(t, cfg, nil)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	c := srv.Client()
	const repo = "zz-secret-repo/alpha"

	d := push(t, srv, repo, "v1", nil) // 2 blob uploads (POST 201) + manifest PUT 201
	res, man := do(t, c, "GET", srv.URL+"/v2/"+repo+"/manifests/v1", nil, "Accept", "application/vnd.oci.image.manifest.v1+json")
	if res.StatusCode != 200 || digest.FromBytes(man) != d {
		t.Fatalf("pull: %s", res.Status)
	}
	layer := []byte("layer")
	res, got := do(t, c, "GET", srv.URL+"/v2/"+repo+"/blobs/"+digest.FromBytes(layer).String(), nil)
	if res.StatusCode != 200 || !bytes.Equal(got, layer) {
		t.Fatalf("blob pull: %s", res.Status)
	}
	if res, _ := do(t, c, "GET", srv.URL+"/v2/"+repo+"/manifests/missing", nil); res.StatusCode != 404 {
		t.Fatalf("missing tag: %s", res.Status)
	}
	// An upload left open.
	if res, _ := do(t, c, "POST", srv.URL+"/v2/"+repo+"/blobs/uploads/", nil); res.StatusCode != 202 {
		t.Fatalf("open upload: %s", res.Status)
	}
	// A blob no manifest references, for gc to free.
	junk := bytes.Repeat([]byte("j"), 1234)
	if res, _ := do(t, c, "POST", srv.URL+"/v2/zz-secret-junk/blobs/uploads/?digest="+digest.FromBytes(junk).String(), junk); res.StatusCode != 201 {
		t.Fatalf("junk: %s", res.Status)
	}
	if _, err := s.gc.Run(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	// A dry run is not counted (here it fails: the server sets no
	// snapshot; neither counter moves).
	_, _ = s.gc.Run(t.Context(), true)

	res, body := do(t, c, "GET", srv.URL+"/metrics", nil)
	if res.StatusCode != 200 {
		t.Fatalf("/metrics: %s", res.Status)
	}
	text := string(body)
	if strings.Contains(text, "zz-secret") || strings.Contains(text, d.Encoded()) || strings.Contains(text, "v1\"") {
		t.Fatalf("/metrics names a repository, tag or digest:\n%s", text)
	}
	ss := parseMetrics(t, text)
	want := []struct {
		name   string
		labels L
		min    float64
		exact  bool
	}{
		{"berth_http_requests_total", L{"route": routeManifest, "method": "PUT", "code": "201"}, 1, true},
		{"berth_http_requests_total", L{"route": routeManifest, "method": "GET", "code": "200"}, 1, true},
		{"berth_http_requests_total", L{"route": routeManifest, "method": "GET", "code": "404"}, 1, true},
		{"berth_http_requests_total", L{"route": routeBlob, "method": "GET", "code": "200"}, 1, true},
		{"berth_http_requests_total", L{"route": routeUploadStart, "method": "POST", "code": "201"}, 3, true},
		{"berth_http_requests_total", L{"route": routeUploadStart, "method": "POST", "code": "202"}, 1, true},
		{"berth_http_request_duration_seconds_count", L{"route": routeManifest, "method": "GET"}, 2, true},
		{"berth_http_request_body_bytes_total", L{"route": routeUploadStart}, float64(len(junk) + len(layer)), false},
		{"berth_http_request_body_bytes_total", L{"route": routeManifest}, 100, false},
		{"berth_http_response_body_bytes_total", L{"route": routeBlob}, float64(len(layer)), true},
		{"berth_http_response_body_bytes_total", L{"route": routeManifest}, float64(len(man)), false},
		{"berth_uploads_in_progress", nil, 1, true},
		{"berth_stored_repositories", nil, 2, true}, // the junk blob's repository stays after gc
		{"berth_stored_manifests", nil, 1, true},
		{"berth_stored_blobs", nil, 2, true},
		{"berth_gc_runs_total", L{"result": "success"}, 1, true},
		{"berth_gc_runs_total", L{"result": "failure"}, 0, true},
		{"berth_gc_freed_bytes_total", nil, float64(len(junk)), true},
		{"berth_gc_deleted_blobs_total", nil, 1, true},
		{"berth_http_requests_in_flight", nil, 1, true}, // this scrape
		{"go_goroutines", nil, 1, false},
	}
	for _, w := range want {
		v, ok := value(ss, w.name, w.labels)
		switch {
		case !ok:
			t.Errorf("%s%v: missing", w.name, w.labels)
		case w.exact && v != w.min:
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, v, w.min)
		case !w.exact && v < w.min:
			t.Errorf("%s%v = %v, want at least %v", w.name, w.labels, v, w.min)
		}
	}
	bi := ReadBuildInfo()
	if _, ok := value(ss, "berth_build_info", L{"version": bi.Version, "commit": bi.Commit, "go_version": bi.GoVersion}); !ok {
		t.Errorf("berth_build_info%+v missing", bi)
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
}

// TestMetricsStoreTotalsCached: the store totals are read at most once
// per TTL, however often /metrics is scraped.
func TestMetricsStoreTotalsCached(t *testing.T) {
	cfg := testConfig(t)
	s := newServer(t, cfg, nil)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	scrape := func() float64 {
		_, body := do(t, srv.Client(), "GET", srv.URL+"/metrics", nil)
		v, ok := value(parseMetrics(t, string(body)), "berth_stored_manifests", nil)
		if !ok {
			t.Fatal("berth_stored_manifests missing")
		}
		return v
	}
	if v := scrape(); v != 0 {
		t.Fatalf("manifests = %v before any push", v)
	}
	push(t, srv, "app", "v1", nil)
	if v := scrape(); v != 0 {
		t.Errorf("manifests = %v within the TTL: the totals were read again", v)
	}
}

// htpasswdFile writes users (name → password) as bcrypt lines.
func htpasswdFile(t *testing.T, users map[string]string) string {
	t.Helper()
	var b strings.Builder
	for u, p := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(u + ":" + string(h) + "\n")
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMetricsAccess: metrics.access decides who reads /metrics on the
// main listener when authentication is on; the probes answer anyone.
func TestMetricsAccess(t *testing.T) {
	htp := htpasswdFile(t, map[string]string{"root": "root-pw", "alice": "alice-pw"})
	for _, tc := range []struct {
		access                string
		anon, alice, rootCode int
	}{
		{"admin", 401, 403, 200},
		{"authenticated", 401, 200, 200},
		{"anonymous", 200, 200, 200},
	} {
		t.Run(tc.access, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Auth.Htpasswd = htp
			cfg.Auth.Admins = []string{"root"}
			cfg.Auth.Access = []config.AccessRule{{Repositories: []string{"**"}, Users: map[string][]string{"alice": {"pull"}}}}
			cfg.Metrics.Access = tc.access
			s := newServer(t, cfg, nil)
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			get := func(path, user, pass string) int {
				req, _ := http.NewRequest("GET", srv.URL+path, nil)
				if user != "" {
					req.SetBasicAuth(user, pass)
				}
				res, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				return res.StatusCode
			}
			if c := get("/metrics", "", ""); c != tc.anon {
				t.Errorf("anonymous: %d, want %d", c, tc.anon)
			}
			if c := get("/metrics", "alice", "alice-pw"); c != tc.alice {
				t.Errorf("alice: %d, want %d", c, tc.alice)
			}
			if c := get("/metrics", "root", "root-pw"); c != tc.rootCode {
				t.Errorf("root: %d, want %d", c, tc.rootCode)
			}
			if c1, c2 := get("/livez", "", ""), get("/readyz", "", ""); c1 != 200 || c2 != 200 {
				t.Errorf("probes anonymous: %d %d", c1, c2)
			}
		})
	}
}

// TestMetricsDisabled: metrics.enabled false serves /metrics nowhere;
// the probes stay.
func TestMetricsDisabled(t *testing.T) {
	cfg := testConfig(t)
	cfg.Metrics.Enabled = false
	s := newServer(t, cfg, nil)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	if res, body := do(t, srv.Client(), "GET", srv.URL+"/metrics", nil); res.StatusCode != 404 || strings.Contains(string(body), "berth_") {
		t.Errorf("/metrics with metrics off: %s", res.Status)
	}
	if res, _ := do(t, srv.Client(), "GET", srv.URL+"/livez", nil); res.StatusCode != 200 {
		t.Errorf("/livez: %s", res.Status)
	}
}

func TestNotifyMetrics(t *testing.T) {
	cfg := testConfig(t)
	cfg.Metrics.Enabled = false
	off := newServer(t, cfg, nil).NotifyMetrics()
	off.Delivered("x") // no-op, no panic
	cfg = testConfig(t)
	s := newServer(t, cfg, nil)
	nm := s.NotifyMetrics()
	nm.Delivered("ci")
	nm.Delivered("ci")
	nm.Failed("ci")
	nm.Dropped("audit-sink")
	rec := httptest.NewRecorder()
	s.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	ss := parseMetrics(t, rec.Body.String())
	for _, w := range []struct {
		name, ep string
		v        float64
	}{
		{"berth_webhook_deliveries_total", "ci", 2},
		{"berth_webhook_failures_total", "ci", 1},
		{"berth_webhook_dropped_total", "audit-sink", 1},
	} {
		if v, _ := value(ss, w.name, L{"endpoint": w.ep}); v != w.v {
			t.Errorf("%s{endpoint=%q} = %v, want %v", w.name, w.ep, v, w.v)
		}
	}
}

// TestMetricsOwnListener: with metrics.addr, /metrics, /livez and
// /readyz answer there without authentication, and /metrics leaves the
// main listener (the probes stay on both).
func TestMetricsOwnListener(t *testing.T) {
	htp := htpasswdFile(t, map[string]string{"root": "root-pw"})
	cfg := testConfig(t)
	cfg.Auth.Htpasswd = htp
	cfg.Auth.Admins = []string{"root"}
	cfg.Metrics.Addr = "127.0.0.1:0"
	var logs lockedBuffer
	s, err := New(t.Context(), cfg, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	var ops string
	for ops == "" {
		for _, line := range strings.Split(logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "metrics and probes listening" {
				ops, _ = m["addr"].(string)
			}
		}
		select {
		case err := <-done:
			t.Fatalf("Serve returned: %v\n%s", err, logs.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	c := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer c.CloseIdleConnections()
	main := "http://" + ln.Addr().String()
	for _, tc := range []struct {
		url  string
		want int
	}{
		{"http://" + ops + "/metrics", 200},
		{"http://" + ops + "/livez", 200},
		{"http://" + ops + "/readyz", 200},
		{"http://" + ops + "/v2/", 404},
		{main + "/metrics", 404},
		{main + "/livez", 200},
		{main + "/readyz", 200},
	} {
		res, body := do(t, c, "GET", tc.url, nil)
		if res.StatusCode != tc.want {
			t.Errorf("GET %s: %s, want %d", tc.url, res.Status, tc.want)
		}
		if strings.HasSuffix(tc.url, "/metrics") && tc.want == 200 && !strings.Contains(string(body), "berth_build_info") {
			t.Errorf("GET %s: no berth_build_info", tc.url)
		}
	}
	// Requests to the main listener are counted, the scrape's own
	// listener is not instrumented.
	_, body := do(t, c, "GET", "http://"+ops+"/metrics", nil)
	if v, _ := value(parseMetrics(t, string(body)), "berth_http_requests_total", L{"route": "/metrics", "code": "404"}); v != 1 {
		t.Errorf("main-listener /metrics 404s counted: %v", v)
	}
}

// FuzzRoutePattern: whatever the path, the route label is one of a fixed
// set (so a client cannot mint series), and the audit fields of a /v2/
// path put back together give the path.
func FuzzRoutePattern(f *testing.F) {
	for _, p := range []string{"/v2/", "/v2/a/b/manifests/v1", "/v2/x/blobs/uploads/", "/v2/x/blobs/uploads/id", "/icons/x", "/repositories/a/b", "/v2//manifests/", "/v2/blobs/uploads/"} {
		f.Add(p)
	}
	allowed := map[string]bool{
		routeV2Base: true, routeCatalog: true, routeManifest: true, routeBlob: true, routeUploadStart: true,
		routeUpload: true, routeTags: true, routeReferrers: true, routeOther: true,
		"/": true, "/search": true, "/repositories": true, "/api/v1/search": true, tokenPath: true,
		"/index/static": true, "/index/dynamic": true, "/berth.flatpakrepo": true,
		metricsPath: true, livezPath: true, readyzPath: true,
		"/apps/<path>": true, "/repositories/<path>": true, "/static/<path>": true, "/icons/<path>": true, "/flatpakref/<path>": true,
	}
	f.Fuzz(func(t *testing.T, p string) {
		got := routePattern(p)
		if !allowed[got] {
			t.Fatalf("routePattern(%q) = %q, not a fixed label", p, got)
		}
		v := parseV2(p)
		var rebuilt string
		switch v.pattern {
		case routeManifest:
			rebuilt = "/v2/" + v.name + "/manifests/" + v.ref
		case routeBlob:
			rebuilt = "/v2/" + v.name + "/blobs/" + v.ref
		case routeUpload:
			rebuilt = "/v2/" + v.name + "/blobs/uploads/" + v.ref
		default:
			return
		}
		if rebuilt != p {
			t.Fatalf("parseV2(%q) = %+v, which names %q", p, v, rebuilt)
		}
	})
}

// TestSetBuildInfo (review finding): a release build's version and commit
// (ldflags, known to cmd/berth) reach berth_build_info, where the
// toolchain's stamp says "(devel)".
func TestSetBuildInfo(t *testing.T) {
	t.Cleanup(func() { buildOverride.Store(nil) })
	SetBuildInfo(BuildInfo{Version: "v9.9.9", Commit: "abc123"})
	b := ReadBuildInfo()
	if b.Version != "v9.9.9" || b.Commit != "abc123" || b.GoVersion == "" {
		t.Fatalf("ReadBuildInfo after SetBuildInfo: %+v", b)
	}
	SetBuildInfo(BuildInfo{})
	if b := ReadBuildInfo(); b != readToolchainBuildInfo() {
		t.Errorf("empty override changed the build info: %+v", b)
	}
}

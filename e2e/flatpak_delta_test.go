package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingProxy sits between the flatpak client and berth and records
// every request's path and the bytes of each answer's body.
type recordingProxy struct {
	URL string
	mu  sync.Mutex
	log []proxied
}

type proxied struct {
	Method, Path string
	Status       int
	Bytes        int64
}

func newRecordingProxy(t *testing.T, addr string) *recordingProxy {
	t.Helper()
	target, _ := url.Parse("http://" + addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &recordingProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(cw, r)
		p.mu.Lock()
		p.log = append(p.log, proxied{Method: r.Method, Path: r.URL.Path, Status: cw.status, Bytes: cw.n})
		p.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *recordingProxy) reset() {
	p.mu.Lock()
	p.log = nil
	p.mu.Unlock()
}

func (p *recordingProxy) requests() []proxied {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]proxied(nil), p.log...)
}

type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingWriter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// deltaIndexTargets returns the targets listed in repo's _deltaindex
// (none when it does not exist).
func deltaIndexTargets(t *testing.T, base, repo string) []string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v2/"+repo+"/manifests/_deltaindex", nil)
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json")
	res, err := httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusNotFound {
		return nil
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET _deltaindex: %s", res.Status)
	}
	var idx struct {
		Manifests []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.NewDecoder(res.Body).Decode(&idx); err != nil {
		t.Fatalf("_deltaindex: %v", err)
	}
	var out []string
	for _, m := range idx.Manifests {
		out = append(out, m.Annotations["io.github.containers.delta.target"])
	}
	return out
}

// waitFor polls cond every 100 ms until it holds or limit passes.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var usingDelta = regexp.MustCompile(`Using OCI delta (sha256:[0-9a-f]{64}) for layer (sha256:[0-9a-f]{64})`)

// TestFlatpakDeltaUpdate installs org.berth.Big v1.0 with the real flatpak
// client, pushes v2.0 (one 4 MiB incompressible file, 64 bytes changed)
// and updates: Berth has made and published a delta, the client uses it
// (its verbose output names it), v2's layer blob is never requested, the
// blob bytes served are a small fraction of the layer, and the installed
// commit is the one a control update without deltas installs. Then v1 is
// deleted: its delta goes from _deltaindex, gc reclaims the delta blob,
// and fsck is clean.
func TestFlatpakDeltaUpdate(t *testing.T) {
	env := newFlatpakEnv(t)
	fx := env.fx
	big, big2 := fx["org.berth.Big"], fx["org.berth.Big-v2"]
	if big.Ref == "" || big2.Ref == "" || len(big2.LayerDigests) != 1 {
		t.Fatalf("fixtures.json lacks org.berth.Big / org.berth.Big-v2 with one layer: %+v %+v", big, big2)
	}
	data := t.TempDir()
	// Retired delta manifests go at once, so gc can show the blob
	// reclaimed without waiting.
	srv := startServerOn(t, data, "BERTH_FLATPAK_DELTAS_RETIRE_AFTER=0s")
	direct := "http://" + srv.Addr
	proxy := newRecordingProxy(t, srv.Addr)
	env.push(t, srv.Addr, "org.berth.Platform")
	env.push(t, srv.Addr, "org.berth.Big")

	// Two users install v1: one updates with deltas, the other (the
	// control) without.
	u, ctrl := env.user(t, proxy.URL), env.user(t, proxy.URL)
	for _, c := range []*flatpakUser{u, ctrl} {
		c.flatpak(t, "install", "-y", "--noninteractive", "berthtest", "org.berth.Big")
	}
	v1Commit := u.info(t, big.Ref)["Commit"]
	if v1Commit == "" {
		t.Fatal("no commit after installing v1")
	}
	if targets := deltaIndexTargets(t, direct, big.Repository); len(targets) != 0 {
		t.Fatalf("a _deltaindex exists with only one version pushed: %v", targets)
	}

	env.push(t, srv.Addr, "org.berth.Big-v2")
	waitFor(t, "_deltaindex lists v2", 2*time.Minute, func() bool {
		return contains(deltaIndexTargets(t, direct, big.Repository), big2.ManifestDigest)
	})

	// The delta index is ordinary content (listed among the registry's
	// tags) but no app, tag or version of the catalogue, search or the
	// Flatpak index.
	if tags := httpGetString(t, direct+"/v2/"+big.Repository+"/tags/list"); !strings.Contains(tags, `"_deltaindex"`) {
		t.Errorf("tags/list does not list _deltaindex: %s", tags)
	}
	for _, path := range []string{"/", "/repositories/" + big.Repository, "/api/v1/search?q=big", "/api/v1/search?q=delta"} {
		if body := httpGetString(t, direct+path); strings.Contains(body, "_deltaindex") || strings.Contains(body, "vnd.redhat.delta") {
			t.Errorf("GET %s shows the delta index:\n%s", path, clipString(body, 2000))
		}
	}
	// The app page shows the update's download next to the full one.
	if page := httpGetString(t, direct+"/apps/org.berth.Big"); !strings.Contains(page, "an update from the previous version downloads a delta") {
		t.Errorf("the app page shows no update by delta:\n%s", clipString(page, 4000))
	}
	if idx := indexBody(t, direct); strings.Contains(idx, "_deltaindex") || strings.Contains(idx, "vnd.redhat.delta") {
		t.Errorf("the Flatpak index lists deltas: %s", clipString(idx, 2000))
	}

	proxy.reset()
	out := u.flatpak(t, "update", "-y", "--noninteractive", "-v")
	m := usingDelta.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("flatpak update did not use a delta; output:\n%s", out)
	}
	if m[2] != big2.LayerDigests[0] {
		t.Errorf("the delta is for layer %s, want v2's layer %s", m[2], big2.LayerDigests[0])
	}
	var blobBytes int64
	for _, r := range proxy.requests() {
		if strings.HasSuffix(r.Path, "/blobs/"+big2.LayerDigests[0]) {
			t.Errorf("v2's layer blob was requested: %s %s", r.Method, r.Path)
		}
		if strings.Contains(r.Path, "/blobs/") {
			blobBytes += r.Bytes
		}
	}
	layerSize := blobSize(t, direct, big.Repository, big2.LayerDigests[0])
	t.Logf("update by delta: %d blob bytes served for a %d-byte layer (%.2f%%)", blobBytes, layerSize, 100*float64(blobBytes)/float64(layerSize))
	if blobBytes*20 >= layerSize {
		t.Errorf("the update downloaded %d blob bytes, not under 5%% of the %d-byte layer", blobBytes, layerSize)
	}
	deltaCommit := u.info(t, big.Ref)["Commit"]

	// The control: the same update without deltas downloads the layer and
	// must install the same commit.
	proxy.reset()
	ctrl.flatpak(t, "update", "-y", "--noninteractive", "--no-static-deltas")
	ctrlCommit := ctrl.info(t, big.Ref)["Commit"]
	fetchedLayer := false
	for _, r := range proxy.requests() {
		fetchedLayer = fetchedLayer || strings.HasSuffix(r.Path, "/blobs/"+big2.LayerDigests[0])
	}
	if !fetchedLayer {
		t.Errorf("the control update did not download v2's layer: %+v", proxy.requests())
	}
	if deltaCommit == "" || deltaCommit == v1Commit || deltaCommit != ctrlCommit {
		t.Errorf("commit after the delta update = %q, after the full update = %q (v1 %q): want equal and new", deltaCommit, ctrlCommit, v1Commit)
	}

	// Deleting v1 drops its delta: no _deltaindex entry leads from it, and
	// once unreferenced, gc reclaims the delta blob.
	deltaBlob := m[1]
	req, _ := http.NewRequest(http.MethodDelete, direct+"/v2/"+big.Repository+"/manifests/"+big.ManifestDigest, nil)
	res, err := httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE v1: %s", res.Status)
	}
	waitFor(t, "_deltaindex gone after deleting v1", time.Minute, func() bool {
		return len(deltaIndexTargets(t, direct, big.Repository)) == 0
	})
	out2, err := runBerthWith(t, []string{"BERTH_GC_GRACE=0s"}, "gc", "--data", data)
	if err != nil {
		t.Fatalf("berth gc: %v\n%s", err, out2)
	}
	if _, err := os.Stat(filepath.Join(data, "blobs", "sha256", deltaBlob[7:9], deltaBlob[7:])); !os.IsNotExist(err) {
		t.Errorf("the delta blob %s is still stored after gc (%v)\n%s", deltaBlob, err, out2)
	}
	if code := blobStatus(t, direct, big.Repository, deltaBlob); code != http.StatusNotFound {
		t.Errorf("HEAD of the delta blob after gc: %d, want 404", code)
	}
	srv.Stop(t)
	if out, err := runBerth(t, "fsck", "--data", data); err != nil {
		t.Errorf("berth fsck after the deltas were dropped: %v\n%s", err, out)
	}
}

// blobSize HEADs a blob and returns its Content-Length.
func blobSize(t *testing.T, base, repo, d string) int64 {
	t.Helper()
	res, err := httpClient().Head(base + "/v2/" + repo + "/blobs/" + d)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("HEAD blob %s: %s", d, res.Status)
	}
	return res.ContentLength
}

func blobStatus(t *testing.T, base, repo, d string) int {
	t.Helper()
	res, err := httpClient().Head(base + "/v2/" + repo + "/blobs/" + d)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// httpGetString GETs url and returns the body; any status but 200 fails.
func httpGetString(t *testing.T, url string) string {
	t.Helper()
	res, err := httpClient().Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, res.Status, err)
	}
	return string(b)
}

func clipString(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// TestFlatpakNoDeltaFullUpdate: when Berth publishes no delta (here: none
// is small enough for flatpak.deltas.max_ratio, recorded as rejected, as a
// delta that fails verification is recorded as failed), the client's
// delta lookup finds nothing and the update downloads v2's layer and
// succeeds. `berth deltas list` shows why, while serve runs.
func TestFlatpakNoDeltaFullUpdate(t *testing.T) {
	env := newFlatpakEnv(t)
	big, big2 := env.fx["org.berth.Big"], env.fx["org.berth.Big-v2"]
	data := t.TempDir()
	srv := startServerOn(t, data, "BERTH_FLATPAK_DELTAS_MAX_RATIO=0.0001")
	proxy := newRecordingProxy(t, srv.Addr)
	env.push(t, srv.Addr, "org.berth.Platform")
	env.push(t, srv.Addr, "org.berth.Big")
	u := env.user(t, proxy.URL)
	u.flatpak(t, "install", "-y", "--noninteractive", "berthtest", "org.berth.Big")
	v1Commit := u.info(t, big.Ref)["Commit"]
	env.push(t, srv.Addr, "org.berth.Big-v2")
	var list string
	waitFor(t, "the delta to v2 is decided", 2*time.Minute, func() bool {
		out, err := runBerth(t, "deltas", "list", "--data", data, big.Repository)
		list = out
		return err == nil && strings.Contains(out, "rejected")
	})
	if !strings.Contains(list, "not substantially smaller") {
		t.Errorf("berth deltas list does not say why:\n%s", list)
	}
	if targets := deltaIndexTargets(t, "http://"+srv.Addr, big.Repository); len(targets) != 0 {
		t.Fatalf("a rejected delta was published: %v", targets)
	}
	proxy.reset()
	out := u.flatpak(t, "update", "-y", "--noninteractive", "-v")
	if usingDelta.MatchString(out) {
		t.Errorf("the update used a delta Berth did not publish:\n%s", out)
	}
	fetched := false
	for _, r := range proxy.requests() {
		fetched = fetched || strings.HasSuffix(r.Path, "/blobs/"+big2.LayerDigests[0]) && r.Status == http.StatusOK
	}
	if !fetched {
		t.Errorf("the update did not download v2's layer: %+v", proxy.requests())
	}
	if c := u.info(t, big.Ref)["Commit"]; c == "" || c == v1Commit {
		t.Errorf("commit after the update = %q (v1 %q)", c, v1Commit)
	}
}

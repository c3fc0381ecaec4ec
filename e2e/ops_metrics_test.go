package e2e

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
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
)

// This file checks what operators see of a running berth: /metrics after
// a known sequence of requests, the probes, and that no configured secret
// shows in any log line, metric or error body.

// opsClient sends requests and keeps every response body it saw.
type opsClient struct {
	t      testing.TB
	c      *http.Client
	bodies [][]byte
}

func (o *opsClient) do(method, url string, body []byte, hdr ...string) (*http.Response, []byte) {
	o.t.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		o.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Basic" {
			u, p, _ := strings.Cut(hdr[i+1], ":")
			req.SetBasicAuth(u, p)
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := o.c.Do(req)
	if err != nil {
		o.t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		o.t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	o.bodies = append(o.bodies, b)
	return res, b
}

// want fails the test unless the answer has status code.
func (o *opsClient) want(code int, method, url string, body []byte, hdr ...string) []byte {
	o.t.Helper()
	res, b := o.do(method, url, body, hdr...)
	if res.StatusCode != code {
		o.t.Fatalf("%s %s: %s, want %d: %s", method, url, res.Status, code, clip(b, 300))
	}
	return b
}

// readyz asks url (a /readyz) until no check reports "timeout", for up
// to 10 s: a healthy store answers at once, but a loaded machine (-race,
// parallel packages) can make one query outlast the probe's 800 ms. Any
// other answer is returned as it is.
func (o *opsClient) readyz(url string) (*http.Response, []byte) {
	o.t.Helper()
	end := time.Now().Add(10 * time.Second)
	for {
		res, body := o.do("GET", url, nil)
		if !bytes.Contains(body, []byte(`"timeout"`)) || time.Now().After(end) {
			return res, body
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// opsImage is a one-layer image: its blobs and manifest.
type opsImage struct {
	config, layer, manifest []byte
}

func newOpsImage(seed string) opsImage {
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"seed":"` + seed + `"}`)
	layer := bytes.Repeat([]byte(seed), 4096)
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(cfg), "size": len(cfg)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromBytes(layer), "size": len(layer)}},
	})
	return opsImage{config: cfg, layer: layer, manifest: man}
}

// push uploads the image's blobs (monolithic POST) and PUTs its manifest.
func (o *opsClient) push(base, repo, tag string, img opsImage, hdr ...string) {
	o.t.Helper()
	for _, b := range [][]byte{img.config, img.layer} {
		o.want(201, "POST", base+"/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), b, hdr...)
	}
	o.want(201, "PUT", base+"/v2/"+repo+"/manifests/"+tag, img.manifest,
		append([]string{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}, hdr...)...)
}

// opsSample is one series of a Prometheus text exposition.
type opsSample struct {
	name   string
	labels map[string]string
	value  float64
}

var opsLabelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func parseOpsMetrics(t testing.TB, body string) []opsSample {
	t.Helper()
	var out []opsSample
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("bad metrics line %q", line)
		}
		s := opsSample{name: line[:i], labels: map[string]string{}, value: v}
		if j := strings.IndexByte(s.name, '{'); j >= 0 {
			for _, m := range opsLabelRE.FindAllStringSubmatch(s.name[j:], -1) {
				s.labels[m[1]] = m[2]
			}
			s.name = s.name[:j]
		}
		out = append(out, s)
	}
	return out
}

// metric sums the series called name whose labels include want.
func metric(ss []opsSample, name string, want map[string]string) (float64, bool) {
	var sum float64
	found := false
next:
	for _, s := range ss {
		if s.name != name {
			continue
		}
		for k, v := range want {
			if s.labels[k] != v {
				continue next
			}
		}
		sum += s.value
		found = true
	}
	return sum, found
}

// logLines reads berth's JSON log.
func logLines(t testing.TB, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// opsAddr waits for the "metrics and probes listening" log line and
// returns its address.
func opsAddr(t testing.TB, s *server) string {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		for _, l := range logLines(t, s.LogPath) {
			if l["msg"] == "metrics and probes listening" {
				if a, _ := l["addr"].(string); a != "" {
					return a
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metrics listener in the log\n%s", tailFile(s.LogPath, 4000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type labels = map[string]string

// TestOpsMetricsSequence: after a known sequence of requests (pushes,
// pulls, a 404, an upload left open, a blob for gc to free), /metrics on
// the metrics listener counts them by route and status, bytes in and out
// grew by at least the bytes sent and received, the store totals and the
// open upload show, a scheduled gc run is counted with the bytes it
// freed, berth_build_info names the binary's version and commit as
// `berth version` does, and no repository name or digest is a label. The
// probes answer on both listeners; /readyz turns 503 while the blob store
// does not answer and 200 when it is back.
func TestOpsMetricsSequence(t *testing.T) {
	data := t.TempDir()
	// gc every second with a grace of 10s: the pushes' blobs are linked by
	// their manifest long before a run may take them, and the unreferenced
	// blob goes at the first run 10s after its upload.
	srv := startServerWith(t, serverOptions{Data: data, Config: `
log:
  format: json
gc:
  interval: 1s
  grace: 10s
metrics:
  addr: 127.0.0.1:0
`})
	base := "http://" + srv.Addr
	ops := "http://" + opsAddr(t, srv)
	o := &opsClient{t: t, c: httpClient()}
	const repo, junkRepo = "zq-private-team/zq-app", "zq-junk-repo"

	img := newOpsImage("a")
	o.push(base, repo, "v1", img)
	o.push(base, repo, "v2", newOpsImage("b"))
	pulledMan := o.want(200, "GET", base+"/v2/"+repo+"/manifests/v1", nil, "Accept", "application/vnd.oci.image.manifest.v1+json")
	pulledLayer := o.want(200, "GET", base+"/v2/"+repo+"/blobs/"+digest.FromBytes(img.layer).String(), nil)
	o.want(404, "GET", base+"/v2/"+repo+"/manifests/zq-missing-tag", nil)
	o.want(404, "GET", base+"/v2/"+repo+"/blobs/"+digest.FromString("zq-none").String(), nil)
	o.want(202, "POST", base+"/v2/"+repo+"/blobs/uploads/", nil) // left open
	junk := bytes.Repeat([]byte("zq-junk"), 1000)
	o.want(201, "POST", base+"/v2/"+junkRepo+"/blobs/uploads/?digest="+digest.FromBytes(junk).String(), junk)
	sentUploads := len(img.config) + len(img.layer) + len(junk) // at least (v2's blobs too)

	// /metrics is on the metrics listener only.
	o.want(404, "GET", base+"/metrics", nil)
	text := string(o.want(200, "GET", ops+"/metrics", nil))
	ss := parseOpsMetrics(t, text)
	exact := []struct {
		name string
		l    labels
		v    float64
	}{
		{"berth_http_requests_total", labels{"route": "/v2/<name>/manifests/<reference>", "method": "PUT", "code": "201"}, 2},
		{"berth_http_requests_total", labels{"route": "/v2/<name>/manifests/<reference>", "method": "GET", "code": "200"}, 1},
		{"berth_http_requests_total", labels{"route": "/v2/<name>/manifests/<reference>", "method": "GET", "code": "404"}, 1},
		{"berth_http_requests_total", labels{"route": "/v2/<name>/blobs/<digest>", "method": "GET", "code": "200"}, 1},
		{"berth_http_requests_total", labels{"route": "/v2/<name>/blobs/<digest>", "method": "GET", "code": "404"}, 1},
		{"berth_http_requests_total", labels{"route": "/v2/<name>/blobs/uploads/", "method": "POST", "code": "201"}, 5},
		{"berth_http_requests_total", labels{"route": "/v2/<name>/blobs/uploads/", "method": "POST", "code": "202"}, 1},
		{"berth_http_requests_total", labels{"route": "/metrics", "method": "GET", "code": "404"}, 1},
		{"berth_http_request_duration_seconds_count", labels{"route": "/v2/<name>/manifests/<reference>", "method": "PUT"}, 2},
		{"berth_uploads_in_progress", nil, 1},
		{"berth_stored_repositories", nil, 2},
		{"berth_stored_manifests", nil, 2},
		{"berth_stored_blobs", nil, 5},
	}
	for _, w := range exact {
		if v, ok := metric(ss, w.name, w.l); !ok || v != w.v {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.l, v, ok, w.v)
		}
	}
	atLeast := []struct {
		name string
		l    labels
		v    float64
	}{
		{"berth_http_request_body_bytes_total", labels{"route": "/v2/<name>/blobs/uploads/"}, float64(sentUploads)},
		{"berth_http_request_body_bytes_total", labels{"route": "/v2/<name>/manifests/<reference>"}, float64(len(img.manifest))},
		{"berth_http_response_body_bytes_total", labels{"route": "/v2/<name>/blobs/<digest>"}, float64(len(pulledLayer))},
		{"berth_http_response_body_bytes_total", labels{"route": "/v2/<name>/manifests/<reference>"}, float64(len(pulledMan))},
		{"berth_stored_blob_bytes", nil, float64(sentUploads)},
		{"go_goroutines", nil, 1},
		{"process_resident_memory_bytes", nil, 1},
	}
	for _, w := range atLeast {
		if v, ok := metric(ss, w.name, w.l); !ok || v < w.v {
			t.Errorf("%s%v = %v (present %v), want at least %v", w.name, w.l, v, ok, w.v)
		}
	}
	for _, leak := range []string{"zq-", digest.FromBytes(img.layer).Encoded(), digest.FromBytes(img.manifest).Encoded(), "v1\"", "v2\""} {
		if strings.Contains(text, leak) {
			t.Errorf("/metrics holds %q (a repository, tag or digest)", leak)
		}
	}

	// berth_build_info: the version and commit `berth version` reports.
	out, err := runBerth(t, "version", "--json")
	if err != nil {
		t.Fatalf("berth version: %v\n%s", err, out)
	}
	var vi struct{ Version, Commit string }
	if err := json.Unmarshal([]byte(out), &vi); err != nil {
		t.Fatalf("berth version --json: %v\n%s", err, out)
	}
	if vi.Commit == "" {
		vi.Commit = "unknown"
	}
	if _, ok := metric(ss, "berth_build_info", labels{"version": vi.Version, "commit": vi.Commit}); !ok || vi.Version == "" {
		t.Errorf("berth_build_info with version %q commit %q missing:\n%s", vi.Version, vi.Commit, grepLines(text, "berth_build_info"))
	}

	// The scheduled gc frees the unreferenced blob (waiting for the
	// condition, not for a time).
	deadline := time.Now().Add(90 * time.Second)
	for {
		ss = parseOpsMetrics(t, string(o.want(200, "GET", ops+"/metrics", nil)))
		freed, _ := metric(ss, "berth_gc_freed_bytes_total", nil)
		if freed >= float64(len(junk)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gc freed %v bytes, want %d\n%s", freed, len(junk), tailFile(srv.LogPath, 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v, _ := metric(ss, "berth_gc_freed_bytes_total", nil); v != float64(len(junk)) {
		t.Errorf("gc freed %v bytes, want exactly the unreferenced blob's %d", v, len(junk))
	}
	if v, _ := metric(ss, "berth_gc_runs_total", labels{"result": "success"}); v < 1 {
		t.Errorf("gc runs = %v", v)
	}
	if v, ok := metric(ss, "berth_gc_runs_total", labels{"result": "failure"}); !ok || v != 0 {
		t.Errorf("gc failures = %v (present %v)", v, ok)
	}
	if v, _ := metric(ss, "berth_gc_deleted_blobs_total", nil); v != 1 {
		t.Errorf("gc deleted blobs = %v, want 1", v)
	}
	// The pushed images survived it.
	o.want(200, "GET", base+"/v2/"+repo+"/blobs/"+digest.FromBytes(img.layer).String(), nil)

	// Probes, on both listeners.
	for _, b := range []string{base, ops} {
		o.want(200, "GET", b+"/livez", nil)
		if res, body := o.readyz(b + "/readyz"); res.StatusCode != 200 {
			t.Fatalf("%s/readyz: %s %s", b, res.Status, body)
		}
	}
	// The blob store stops answering (a file where its directory was:
	// every read fails with ENOTDIR), then comes back.
	blobs := filepath.Join(data, "blobs")
	if err := os.Rename(blobs, blobs+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blobs, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{base, ops} {
		res, body := o.readyz(b + "/readyz")
		var a struct {
			Status string
			Checks map[string]string
		}
		if err := json.Unmarshal(body, &a); err != nil || res.StatusCode != 503 || a.Checks["blobs"] != "failed" || a.Checks["metadata"] != "ok" {
			t.Errorf("%s/readyz with the blob store gone: %s %s", b, res.Status, body)
		}
		o.want(200, "GET", b+"/livez", nil)
	}
	if err := os.Remove(blobs); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(blobs+".away", blobs); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{base, ops} {
		if res, body := o.readyz(b + "/readyz"); res.StatusCode != 200 {
			t.Fatalf("%s/readyz after the blob store came back: %s %s", b, res.Status, body)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestOpsNoSecrets runs berth with every kind of secret in its
// configuration — an htpasswd user (password and bcrypt hash), the token
// signing key, a webhook secret and a credential in a webhook URL's query
// — sends it successful and failing requests of every kind (logins,
// forged tokens, pushes, deletes, refusals), and greps every log line,
// the /metrics body and every response body for them. It also checks the
// audit lines of a push, a delete and the failed logins.
func TestOpsNoSecrets(t *testing.T) {
	dir := t.TempDir()
	const (
		alicePW   = "Pw-s3cret-Alice-9q"
		wrongPW   = "Wrong-pw-Mallory-77x"
		hookKey   = "whsec-Do-Not-Leak-41"
		urlSecret = "urltoken-Leak-58"
	)
	hash, err := bcrypt.GenerateFromPassword([]byte(alicePW), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htp := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htp, []byte("alice:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	keyFile := filepath.Join(dir, "token-key.pem")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	defer hook.Close()
	hookSecretFile := filepath.Join(dir, "hook-secret")
	if err := os.WriteFile(hookSecretFile, []byte(hookKey+"-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServerWith(t, serverOptions{Config: `
log:
  format: json
  level: debug
auth:
  htpasswd: ` + htp + `
  admins: [alice]
  access:
    - repositories: ["team/**"]
      anonymous: [pull]
  token:
    enabled: true
    key_file: ` + keyFile + `
metrics:
  access: admin
notifications:
  endpoints:
    - name: ci
      url: ` + hook.URL + `/hook?token=` + urlSecret + `
      secret: ` + hookKey + `
      allow_private: true
    - name: audit-sink
      url: ` + hook.URL + `/sink
      secret_file: ` + hookSecretFile + `
      allow_private: true
`})
	base := "http://" + srv.Addr
	o := &opsClient{t: t, c: httpClient()}
	aliceAuth := []string{"Basic", "alice:" + alicePW}

	// A token from the token endpoint, used as a client would.
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(o.want(200, "GET", base+"/auth/token?scope=repository:team/app:pull,push,delete", nil, aliceAuth...), &tok); err != nil || tok.Token == "" {
		t.Fatalf("token: %v", err)
	}
	o.bodies = o.bodies[:0] // the one body that must hold the token
	bearer := []string{"Authorization", "Bearer " + tok.Token}
	img := newOpsImage("s")
	o.push(base, "team/app", "v1", img, aliceAuth...)
	o.want(200, "GET", base+"/v2/team/app/manifests/v1", nil, append([]string{"Accept", "application/vnd.oci.image.manifest.v1+json"}, bearer...)...)
	md := digest.FromBytes(img.manifest)
	o.want(202, "DELETE", base+"/v2/team/app/manifests/"+md.String(), nil, aliceAuth...)

	// Failures: wrong password, unknown user, forged and tampered tokens,
	// a token endpoint refusal, refused writes, malformed requests.
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"alice","access":[]}`)) + ".forgedSig-Zz"
	parts := strings.Split(tok.Token, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"root"}`)) + "." + parts[2]
	o.want(401, "GET", base+"/v2/", nil, "Basic", "alice:"+wrongPW)
	o.want(401, "GET", base+"/v2/", nil, "Basic", "mallory:"+alicePW)
	o.want(401, "GET", base+"/v2/team/app/tags/list", nil, "Authorization", "Bearer "+forged)
	o.want(401, "GET", base+"/v2/team/app/tags/list", nil, "Authorization", "Bearer "+tampered)
	o.want(401, "GET", base+"/auth/token?scope=repository:team/app:pull", nil, "Basic", "alice:"+wrongPW)
	o.do("PUT", base+"/v2/team/app/manifests/v9", []byte("{"), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	o.do("PUT", base+"/v2/team/app/manifests/v9", []byte("{not json"), append([]string{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}, aliceAuth...)...)
	o.do("DELETE", base+"/v2/team/app/blobs/sha256:zz", nil, aliceAuth...)
	o.do("GET", base+"/v2/team/app/blobs/uploads/not-an-id", nil, aliceAuth...)
	o.do("GET", base+"/metrics", nil) // anonymous: refused
	o.do("GET", base+"/readyz", nil)

	metricsText := o.want(200, "GET", base+"/metrics", nil, aliceAuth...)
	if !bytes.Contains(metricsText, []byte("berth_http_requests_total")) {
		t.Fatalf("/metrics as admin: no request counts")
	}

	// Stop berth (its shutdown lines too), then read everything.
	srv.Stop(t)
	logText, err := os.ReadFile(srv.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"password":             alicePW,
		"wrong password":       wrongPW,
		"bcrypt hash":          string(hash),
		"bcrypt hash body":     string(hash[7:]),
		"webhook secret":       hookKey,
		"webhook URL query":    urlSecret,
		"issued token":         tok.Token,
		"issued token sig":     parts[2],
		"forged token":         forged,
		"forged token sig":     "forgedSig-Zz",
		"Basic credential":     base64.StdEncoding.EncodeToString([]byte("alice:" + alicePW)),
		"wrong Basic":          base64.StdEncoding.EncodeToString([]byte("alice:" + wrongPW)),
		"postgres-like DSN":    "postgres://",
		"DSN password key":     "password=",
		"PEM header":           "PRIVATE KEY",
		"private key scalar":   key.D.Text(16),
		"private key b64 of D": base64.StdEncoding.EncodeToString(key.D.Bytes()),
		"private key b64url D": base64.RawURLEncoding.EncodeToString(key.D.Bytes()),
	}
	for i, line := range strings.Split(strings.TrimSpace(string(keyPEM)), "\n") {
		if !strings.HasPrefix(line, "-----") && len(line) >= 16 {
			secrets["PEM line "+strconv.Itoa(i)] = line
		}
	}
	where := map[string][]byte{"log": logText, "/metrics": metricsText}
	for i, b := range o.bodies {
		where["response body "+strconv.Itoa(i)] = b
	}
	for what, s := range secrets {
		for place, text := range where {
			if bytes.Contains(text, []byte(s)) {
				t.Errorf("the %s shows in the %s", what, place)
			}
		}
	}

	// The audit lines: the push, the delete, the failed logins.
	var audit []map[string]any
	for _, l := range logLines(t, srv.LogPath) {
		if l["msg"] == "audit" {
			audit = append(audit, l)
		}
	}
	find := func(event, user string) map[string]any {
		for _, l := range audit {
			if l["event"] == event && l["user"] == user {
				return l
			}
		}
		t.Errorf("no audit line %s by %q among %v", event, user, audit)
		return map[string]any{}
	}
	push := find("manifest.push", "alice")
	if push["repository"] != "team/app" || push["reference"] != "v1" || push["digest"] != md.String() || push["auth"] != "basic" || push["remote"] != "127.0.0.1" || push["request_id"] == "" {
		t.Errorf("push audit line: %v", push)
	}
	del := find("manifest.delete", "alice")
	if del["repository"] != "team/app" || del["digest"] != md.String() {
		t.Errorf("delete audit line: %v", del)
	}
	find("auth.failed", "alice")   // wrong password, on /v2/ and the token endpoint
	find("auth.failed", "mallory") // unknown user
	find("auth.failed", "")        // forged bearer tokens
	if n := len(audit); n < 7 {
		t.Errorf("%d audit lines, want at least 7 (push, delete, 5 failed logins): %v", n, audit)
	}
}

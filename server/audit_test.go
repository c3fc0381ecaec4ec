package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/config"
)

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// auditLines returns the JSON log lines with msg "audit".
func auditLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line not JSON: %q", line)
		}
		if m["msg"] == auditMsg {
			out = append(out, m)
		}
	}
	return out
}

// TestAuditLog: one line of one shape per push, tag, manifest and blob
// delete, and per failed authentication (Basic on any path, and the token
// endpoint), naming who, what and from where; no password in any line.
func TestAuditLog(t *testing.T) {
	htp := htpasswdFile(t, map[string]string{"alice": "alice-pw-Q7"})
	cfg := testConfig(t)
	cfg.Auth.Htpasswd = htp
	cfg.Auth.Token.Enabled = true
	cfg.Auth.Access = []config.AccessRule{{Repositories: []string{"team/**"}, Users: map[string][]string{"alice": {"pull", "push", "delete"}}}}
	var logs lockedBuffer
	s, err := New(t.Context(), cfg, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	c := srv.Client()
	alice := func(method, path string, body []byte, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		req.SetBasicAuth("alice", "alice-pw-Q7")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	const repo = "team/app"
	blobs := [][]byte{[]byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`), []byte("layer bytes")}
	for _, b := range blobs {
		if res := alice("POST", "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), b); res.StatusCode != 201 {
			t.Fatalf("blob: %s", res.Status)
		}
	}
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(blobs[0]), "size": len(blobs[0])},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromBytes(blobs[1]), "size": len(blobs[1])}},
	})
	md := digest.FromBytes(man)
	if res := alice("PUT", "/v2/"+repo+"/manifests/v1", man, "Content-Type", "application/vnd.oci.image.manifest.v1+json", "X-Request-Id", "req-push-1"); res.StatusCode != 201 {
		t.Fatalf("push: %s", res.Status)
	}
	if res := alice("DELETE", "/v2/"+repo+"/manifests/v1", nil); res.StatusCode != 202 {
		t.Fatalf("tag delete: %s", res.Status)
	}
	if res := alice("DELETE", "/v2/"+repo+"/manifests/"+md.String(), nil); res.StatusCode != 202 {
		t.Fatalf("manifest delete: %s", res.Status)
	}
	if res := alice("DELETE", "/v2/"+repo+"/blobs/"+digest.FromBytes(blobs[1]).String(), nil); res.StatusCode != 202 {
		t.Fatalf("blob delete: %s", res.Status)
	}
	// Not audited: a refused delete, a read.
	if res := alice("DELETE", "/v2/"+repo+"/manifests/nosuchtag", nil); res.StatusCode == 202 {
		t.Fatalf("delete of a missing tag: %s", res.Status)
	}
	// Failed logins: a wrong password on the API and on the token endpoint.
	req, _ := http.NewRequest("GET", srv.URL+"/v2/", nil)
	req.SetBasicAuth("alice", "wrong-pw-Z3")
	if res, err := c.Do(req); err != nil || res.StatusCode != 401 {
		t.Fatalf("wrong password: %v %v", res, err)
	}
	req, _ = http.NewRequest("GET", srv.URL+"/auth/token?service=x&scope=repository:team/app:pull", nil)
	req.SetBasicAuth("mallory", "guess-pw-K1")
	if res, err := c.Do(req); err != nil || res.StatusCode != 401 {
		t.Fatalf("token with a wrong password: %v %v", res, err)
	}

	out := logs.String()
	lines := auditLines(t, out)
	wantEvents := []struct{ event, user, auth, ref, digest string }{
		{eventPush, "alice", "basic", "v1", md.String()},
		{eventTagDelete, "alice", "basic", "v1", ""},
		{eventManifestDelete, "alice", "basic", md.String(), md.String()},
		{eventBlobDelete, "alice", "basic", digest.FromBytes(blobs[1]).String(), digest.FromBytes(blobs[1]).String()},
		{eventAuthFailed, "alice", "basic", "", ""},
		{eventAuthFailed, "mallory", "basic", "", ""},
	}
	if len(lines) != len(wantEvents) {
		t.Fatalf("%d audit lines, want %d:\n%s", len(lines), len(wantEvents), out)
	}
	for i, w := range wantEvents {
		l := lines[i]
		for _, k := range []string{"event", "user", "auth", "remote", "request_id", "component"} {
			if _, ok := l[k]; !ok {
				t.Errorf("audit line %d has no %q: %v", i, k, l)
			}
		}
		if l["event"] != w.event || l["user"] != w.user || l["auth"] != w.auth || l["remote"] != "127.0.0.1" || l["component"] != "audit" {
			t.Errorf("audit line %d = %v, want %+v", i, l, w)
		}
		if w.event == eventAuthFailed {
			if l["reason"] == "" || l["reason"] == nil {
				t.Errorf("auth.failed without a reason: %v", l)
			}
			continue
		}
		if l["repository"] != repo || l["reference"] != w.ref || l["digest"] != w.digest {
			t.Errorf("audit line %d = %v, want %+v", i, l, w)
		}
	}
	if lines[0]["request_id"] != "req-push-1" {
		t.Errorf("push request id = %v", lines[0]["request_id"])
	}
	for _, secret := range []string{"alice-pw-Q7", "wrong-pw-Z3", "guess-pw-K1", "$2a$", "$2y$", "$2b$"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

// TestAuditAnonymous: with authentication off, the audit line names the
// anonymous principal.
func TestAuditAnonymous(t *testing.T) {
	cfg := testConfig(t)
	var logs lockedBuffer
	s, err := New(t.Context(), cfg, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	d := push(t, srv, "open/app", "v1", nil)
	lines := auditLines(t, logs.String())
	if len(lines) != 1 || lines[0]["event"] != eventPush || lines[0]["user"] != "" || lines[0]["auth"] != "anonymous" || lines[0]["digest"] != d.String() {
		t.Fatalf("audit lines: %v", lines)
	}
}

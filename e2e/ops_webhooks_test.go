package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// hookRequest is one request the webhook receiver got.
type hookRequest struct {
	path      string
	eventID   string
	eventType string
	timestamp string
	signature string
	body      []byte
	status    int // what the receiver answered
	msg       struct {
		ID         string          `json:"id"`
		Seq        int64           `json:"seq"`
		Type       string          `json:"type"`
		Repository string          `json:"repository"`
		Data       json.RawMessage `json:"data"`
	}
}

// hookReceiver is a webhook receiver on 127.0.0.1 that answers 503 while
// down, else 204, and records every request.
type hookReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	down bool
	reqs []hookRequest
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{down: true}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := hookRequest{path: r.URL.Path, eventID: r.Header.Get("X-Berth-Event-Id"), eventType: r.Header.Get("X-Berth-Event"),
			timestamp: r.Header.Get("X-Berth-Timestamp"), signature: r.Header.Get("X-Berth-Signature"), body: body}
		if err := json.Unmarshal(body, &req.msg); err != nil {
			t.Errorf("webhook body is not JSON: %v: %q", err, body)
		}
		h.mu.Lock()
		req.status = http.StatusNoContent
		if h.down {
			req.status = http.StatusServiceUnavailable
		}
		h.reqs = append(h.reqs, req)
		h.mu.Unlock()
		w.WriteHeader(req.status)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookReceiver) setDown(down bool) {
	h.mu.Lock()
	h.down = down
	h.mu.Unlock()
}

func (h *hookReceiver) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.reqs...)
}

// acked returns the distinct events acknowledged (2xx) on path, in the
// order of their first acknowledgement.
func (h *hookReceiver) acked(path string) []hookRequest {
	seen := map[string]bool{}
	var out []hookRequest
	for _, r := range h.requests() {
		if r.path == path && r.status/100 == 2 && !seen[r.eventID] {
			seen[r.eventID] = true
			out = append(out, r)
		}
	}
	return out
}

// waitUntil polls cond every 50ms; the deadline is a failure, never an
// assertion about speed.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOpsWebhooks: a receiver that fails the first deliveries, a Berth
// SIGKILLed and restarted on the same data in between, and then: every
// event arrives, in order (per repository, and per endpoint overall),
// each signature verifies, every duplicate is a re-send of the same event
// (same id, same body), and an endpoint on a private address without
// allow_private is refused, logged and counted.
func TestOpsWebhooks(t *testing.T) {
	const secret = "hook-secret-7Qx2"
	rcv := newHookReceiver(t)
	secretFile := filepath.Join(t.TempDir(), "hook-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`notifications:
  endpoints:
    - name: ci
      url: %[1]s/hook
      secret_file: %[2]s
      allow_private: true
      timeout: 5s
    - name: private
      url: %[1]s/private
      secret: %[3]s
`, rcv.URL, secretFile, secret)
	data := t.TempDir()
	srv := startServerWith(t, serverOptions{Data: data, Config: cfg})
	p := &pusher{c: httpClient(), base: func() string { return "http://" + srv.Addr }}

	img1 := makeTestImage("team/a", "v1", []byte(`{"architecture":"amd64","os":"linux","n":1}`), []byte("layer one"))
	img2 := makeTestImage("team/b", "latest", []byte(`{"architecture":"amd64","os":"linux","n":2}`), []byte("layer two"))
	img3 := makeTestImage("team/a", "v1", []byte(`{"architecture":"amd64","os":"linux","n":3}`), []byte("layer three"))
	for _, img := range []testImage{img1, img2, img3} {
		for _, b := range img.blobs() {
			if err := p.monolithic(img.Repo, b); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.putManifest(img.Repo, img.Tag, img.Manifest); err != nil {
			t.Fatal(err)
		}
	}
	// The receiver is down: Berth retries the first event; kill it then.
	waitUntil(t, time.Minute, "two failed attempts", func() bool { return len(rcv.requests()) >= 2 })
	srv.Kill(t)
	if n := len(rcv.acked("/hook")); n != 0 {
		t.Fatalf("%d events acknowledged while the receiver was down", n)
	}

	srv = startServerWith(t, serverOptions{Data: data, Config: cfg})
	// Changes after the restart: a tag, a manifest and a blob deleted, and
	// a gc run by `berth gc` beside the server.
	layer1 := digest.FromBytes(img1.Layers[0])
	for _, del := range []string{"/v2/team/b/manifests/latest", "/v2/team/a/manifests/" + digest.FromBytes(img1.Manifest).String(),
		"/v2/team/a/blobs/" + layer1.String()} {
		if _, _, err := p.expect(http.StatusAccepted, "DELETE "+del, "DELETE", del, nil); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := runBerth(t, "gc", "--data", data); err != nil {
		t.Fatalf("berth gc: %v\n%s", err, out)
	}
	// One more failure after the restart, then the receiver comes back.
	before := len(rcv.requests())
	waitUntil(t, time.Minute, "a failed attempt after the restart", func() bool { return len(rcv.requests()) > before })
	rcv.setDown(false)
	const total = 10
	waitUntil(t, 3*time.Minute, "every event acknowledged", func() bool { return len(rcv.acked("/hook")) >= total })

	// Every event, in outbox order.
	type want struct{ typ, repo, check string }
	wants := []want{
		{"manifest.push", "team/a", digest.FromBytes(img1.Manifest).String()},
		{"tag.update", "team/a", `"tag":"v1"`},
		{"manifest.push", "team/b", digest.FromBytes(img2.Manifest).String()},
		{"tag.update", "team/b", `"tag":"latest"`},
		{"manifest.push", "team/a", digest.FromBytes(img3.Manifest).String()},
		{"tag.update", "team/a", `"previousDigest":"` + digest.FromBytes(img1.Manifest).String()},
		{"tag.delete", "team/b", `"tag":"latest"`},
		{"manifest.delete", "team/a", digest.FromBytes(img1.Manifest).String()},
		{"blob.delete", "team/a", layer1.String()},
		{"gc.run", "", `"bytesFreed"`},
	}
	acked := rcv.acked("/hook")
	if len(acked) != total {
		t.Fatalf("%d distinct events acknowledged, want %d", len(acked), total)
	}
	lastByRepo := map[string]int64{}
	for i, r := range acked {
		w := wants[i]
		if r.msg.Type != w.typ || r.msg.Repository != w.repo || !strings.Contains(string(r.msg.Data), w.check) {
			t.Errorf("event %d: %s in %q %s; want %s in %q with %s", i, r.msg.Type, r.msg.Repository, r.msg.Data, w.typ, w.repo, w.check)
		}
		if i > 0 && r.msg.Seq <= acked[i-1].msg.Seq {
			t.Errorf("event %d: seq %d after %d", i, r.msg.Seq, acked[i-1].msg.Seq)
		}
		if r.msg.Seq <= lastByRepo[r.msg.Repository] {
			t.Errorf("event %d out of order in %q", i, r.msg.Repository)
		}
		lastByRepo[r.msg.Repository] = r.msg.Seq
	}

	// Every request: signed (verified here with the standard library,
	// independently of Berth's code), headers agreeing with the body, and
	// a duplicate only ever a re-send of the same event.
	bodies := map[string][]byte{}
	failures := 0
	for i, r := range rcv.requests() {
		if r.path != "/hook" {
			continue
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(r.timestamp + "."))
		mac.Write(r.body)
		if r.signature != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("request %d: signature %q does not verify", i, r.signature)
		}
		if sec, err := strconv.ParseInt(r.timestamp, 10, 64); err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Hour {
			t.Errorf("request %d: timestamp %q", i, r.timestamp)
		}
		if r.eventID == "" || r.eventID != r.msg.ID || r.eventType != r.msg.Type {
			t.Errorf("request %d: headers (id %q, type %q) do not match the body (%q, %q)", i, r.eventID, r.eventType, r.msg.ID, r.msg.Type)
		}
		if prev, ok := bodies[r.eventID]; ok && string(prev) != string(r.body) {
			t.Errorf("request %d: event %s sent again with another body", i, r.eventID)
		}
		bodies[r.eventID] = r.body
		if r.status/100 != 2 {
			failures++
		}
	}
	if len(bodies) != total {
		t.Errorf("%d distinct event ids sent, want %d", len(bodies), total)
	}
	if failures < 3 {
		t.Errorf("%d failed deliveries, want at least 3 (two before the kill, one after)", failures)
	}
	t.Logf("%d requests for %d events (%d failed)", len(bodies)+failures, total, failures)

	// The private endpoint: never reached, the refusal logged and counted.
	for _, r := range rcv.requests() {
		if r.path == "/private" {
			t.Fatalf("the endpoint without allow_private was reached")
		}
	}
	waitUntil(t, time.Minute, "the refusal in the log", func() bool {
		b, _ := os.ReadFile(srv.LogPath)
		return regexp.MustCompile(`endpoint=private.*not a public address`).Match(b)
	})
	var metrics string
	waitUntil(t, time.Minute, "the refusals counted in /metrics", func() bool {
		_, b, err := p.expect(http.StatusOK, "GET /metrics", "GET", "/metrics", nil)
		metrics = string(b)
		return err == nil && regexp.MustCompile(`berth_webhook_failures_total\{endpoint="private"\} [1-9]`).MatchString(metrics)
	})
	if !regexp.MustCompile(`berth_webhook_deliveries_total\{endpoint="ci"\} [1-9]`).MatchString(metrics) {
		t.Errorf("no deliveries counted for ci in /metrics")
	}
	// The secret is in no log line and no metric.
	for _, path := range []string{srv.LogPath} {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), secret) {
			t.Errorf("%s holds the webhook secret", path)
		}
	}
	if strings.Contains(metrics, secret) {
		t.Error("/metrics holds the webhook secret")
	}
}

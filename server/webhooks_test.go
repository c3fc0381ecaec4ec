package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/config"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/notify"
)

// TestWebhooksWired: Serve runs the delivery worker; a push by an
// authenticated user reaches the configured endpoint, signed, naming the
// user as actor; the delivery is counted in /metrics.
func TestWebhooksWired(t *testing.T) {
	var (
		mu  sync.Mutex
		got []notify.Message
	)
	const secret = "wired-secret-9"
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !notify.Verify([]byte(secret), r.Header.Get(notify.HeaderTimestamp), body, r.Header.Get(notify.HeaderSignature)) {
			t.Errorf("signature does not verify")
		}
		var m notify.Message
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("body: %v", err)
		}
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	defer rcv.Close()

	cfg := testConfig(t)
	cfg.Auth.Htpasswd = htpasswdFile(t, map[string]string{"alice": "alice-pw-W1"})
	cfg.Auth.Access = []config.AccessRule{{Repositories: []string{"**"}, Users: map[string][]string{"alice": {"pull", "push", "delete"}}}}
	cfg.Notifications.Endpoints = []config.Endpoint{{Name: "ci", URL: rcv.URL, Secret: secret, AllowPrivate: true,
		Events: []string{meta.EventManifestPush}}}
	s := newServer(t, cfg, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	base := "http://" + ln.Addr().String()
	do := func(method, path string, body []byte, hdr ...string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		req.SetBasicAuth("alice", "alice-pw-W1")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("%s %s: %s", method, path, res.Status)
		}
	}
	cfgBlob := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	do("POST", "/v2/team/app/blobs/uploads/?digest="+digest.FromBytes(cfgBlob).String(), cfgBlob)
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(cfgBlob), "size": len(cfgBlob)},
		"layers": []any{},
	})
	do("PUT", "/v2/team/app/manifests/v1", man, "Content-Type", "application/vnd.oci.image.manifest.v1+json")

	// The delivery, and then its count in /metrics.
	const counted = `berth_webhook_deliveries_total{endpoint="ci"} 1`
	end := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		rec := httptest.NewRecorder()
		s.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if n > 0 && strings.Contains(rec.Body.String(), counted) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("within 30s: %d deliveries; /metrics has %q: %v", n, counted, strings.Contains(rec.Body.String(), counted))
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	m := got[0]
	mu.Unlock()
	if m.Type != meta.EventManifestPush || m.Repository != "team/app" || m.Actor != "alice" {
		t.Errorf("delivery %+v, want alice's manifest.push in team/app", m)
	}
	var p meta.ManifestPushPayload
	if err := json.Unmarshal(m.Data, &p); err != nil || p.Digest != digest.FromBytes(man) || len(p.Tags) != 1 || p.Tags[0] != "v1" {
		t.Errorf("payload %s (%v)", m.Data, err)
	}
}
